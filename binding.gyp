{
  "targets": [
    {
      "target_name": "weft_native",
      "sources": ["native/weft_native.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
