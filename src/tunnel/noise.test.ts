import { test } from 'node:test';
import assert from 'node:assert/strict';
import { native } from '../io/native.js';
import { dhPair, publicKeyOf, readIkInitiation, readIkResponse, Symmetric, writeIkInitiation, writeIkResponse } from './noise.js';

/**
 * Noise_IK_25519_ChaChaPoly_SHA256 as other implementations make it: the published test
 * vectors (copied here, byte for byte, from the files named), each a handshake with fixed
 * static and ephemeral keys and a prologue, then transport messages both ways.
 */
interface Vector {
  source: string;
  prologue: string;
  initStatic: string;
  initEphemeral: string;
  initRemoteStatic: string;
  respStatic: string;
  respEphemeral: string;
  /** Not in every file. */
  handshakeHash?: string;
  /** [payload, ciphertext], the initiator's first and then in turn. */
  messages: Array<[string, string]>;
}

const VECTORS: Vector[] = [
  {
    source: 'haskell-cryptography/cacophony vectors/cacophony.txt (commit 8ee9d41e34a1a596cfa3ab12aa4069ff87dc1247; snow carries the same in tests/vectors/cacophony.txt)',
    prologue: '4a6f686e2047616c74',
    initStatic: 'e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1',
    initEphemeral: '893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a',
    initRemoteStatic: '31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62',
    respStatic: '4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893',
    respEphemeral: 'bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b',
    handshakeHash: '0b0f68fb0c27e03ce9b97565995ed4838cc0581b762ef72b062f6a546419fad7',
    messages: [
      ['4c756477696720766f6e204d69736573',
        'ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944718da798efbcd91528520204f904b9bd6c7413dccdc214d951e15253e39987f18146e8cd0873654207148333479d4d16c289f0294b29960a72f48e0b7bba2e89083169825e59642148d492020664ccf7'],
      ['4d757272617920526f746862617264',
        '95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f1448088435361e70b2ed446e6c9ec387d1d6b3b840f194e373979d241b203c4acafccf5'],
      ['462e20412e20486179656b',
        '050e9f3c8fac16b68dbce8f8c4bfbf6617c897f9ada4aa29aa19c8'],
      ['4361726c204d656e676572',
        '344233a6cabb7141d80f3da2fedc311d9646bbb0f505afe403a667'],
      ['4a65616e2d426170746973746520536179',
        '62cdeeb172ad7ade7aa7d9e069da5790f12331bfa00177787a1d0810c67dc3b2b4'],
      ['457567656e2042f6686d20766f6e2042617765726b',
        '029bead1b40992327044d409d9a1f3ad8f36c3c452775d557e18bbeb2e8dfcead32d514024'],
    ],
  },
  {
    source: 'mcginty/snow tests/vectors/snow.txt (commit 8ac60f51cfe3e010c84f0a454cc575ad9204fa12)',
    prologue: '5468657265206973206e6f20726967687420616e642077726f6e672e2054686572652773206f6e6c792066756e20616e6420626f72696e672e',
    initStatic: 'f49f93c5112c0787acc808d61716d7e090e076a58f15a3f78d92773f8dcb473b',
    initEphemeral: 'dae68498c41315cff7e4a34dded8d973199d8f0cf3fcb8b6651c169de77de8be',
    initRemoteStatic: '2ea5942829bac414e25aa4cbb1bcc43394816ebb1bd12550d7d0eb4415e42951',
    respStatic: 'b790546f98b1e933c48cd01f17e7b281469d46fcacc9a3b584ae65b1d6272e8e',
    respEphemeral: 'c0875a5b59c8492bd2135e5432d7d484f938e0a1f5009428c4bcb70b2f69f69f',
    messages: [
      ['95a8f51c435a9530ff1f30868ed7b23ec952eb513c26a0774fed82d2978a8c81',
        '6d21fec9141f3f37cc464e936a48b2d9521b5a44e0f3d960895d3c3fba30282f731f445c25e898e2534ac0536715b24308c108fc46bd260c887b36c3f68e3a05654fc8295c068ed53fb2022560961224e0b10b0835e1efc82fc587cd50f7178fe3d9eb06e0351c6e7334162c10bed670bfa2a105f7b2768a140b3fd597782601'],
      ['b866b807a6d8b83182b884dbfedc861843c5082bd6e480cb54e4245a72083041',
        'e64e1fb8701c4f4bc3850b255fea657d4d835338b059c89acc99628fbe52473b41a4e79e3c1e6abc46bf80f078a005e15d8a3e04f989af3e6cb99b52031165006163ac3e17b928af8c116009d7bf4fb2'],
      ['e3a4937faef391028f759758b428b57652e0069a8dee64dfed01b60846938740',
        '2bebe19102169cdfe79cf41e38930bfd20a5b2fc78ccf33e853ddd939c0983174656eb27b61464a607762848892ca1c0'],
      ['693972f27b0cb98aeac1fb54d782125431e7540e0cb2fa882cf51a8184d724fd',
        'c7c56da33b45d12f4754e17978bd49999c9c8f51d00db460f902aba2e6e245d0c46662f507915de8596f43b1d175f1db'],
    ],
  },
];

const hex = (s: string) => Buffer.from(s, 'hex');

for (const v of VECTORS) {
  test(`Noise IK against ${v.source.split(' ')[0]}'s vector: both handshake messages${v.handshakeHash === undefined ? '' : ', the handshake hash'} and the transport messages, byte for byte`, () => {
    const initiator = dhPair(hex(v.initStatic));
    const responder = dhPair(hex(v.respStatic));
    const initiatorEphemeral = dhPair(hex(v.initEphemeral));
    const responderEphemeral = dhPair(hex(v.respEphemeral));
    assert.deepEqual(Buffer.from(publicKeyOf(hex(v.respStatic))), hex(v.initRemoteStatic), 'the initiator knows the responder\'s key');
    const [[p1, c1], [p2, c2], ...transport] = v.messages;

    // -> e, es, s, ss, {payload}
    const si = new Symmetric(hex(v.prologue));
    const m1 = writeIkInitiation(si, initiator, responder.publicKey, initiatorEphemeral, hex(p1));
    assert.equal(m1.toString('hex'), c1);
    const sr = new Symmetric(hex(v.prologue));
    const got = readIkInitiation(sr, responder, m1);
    assert.ok(got !== null);
    assert.equal(got.payload.toString('hex'), p1);
    assert.deepEqual(got.initiatorKey, Buffer.from(initiator.publicKey));

    // <- e, ee, se, {payload}
    const m2 = writeIkResponse(sr, responderEphemeral, got.initiatorEphemeral, got.initiatorKey, hex(p2));
    assert.equal(m2.toString('hex'), c2);
    assert.equal(readIkResponse(si, initiator, initiatorEphemeral.key, m2)?.toString('hex'), p2);

    assert.deepEqual(si.h, sr.h);
    if (v.handshakeHash !== undefined) assert.equal(si.h.toString('hex'), v.handshakeHash);
    const [i2r, r2i] = si.split();
    assert.deepEqual(sr.split(), [i2r, r2i]);

    // Transport, in turn from the initiator: each direction's nonce counts from 0, the
    // associated data empty, sealed and opened by the addon as the data path does.
    transport.forEach(([p, c], i) => {
      const key = i % 2 === 0 ? i2r : r2i;
      const counter = Math.floor(i / 2);
      const plain = hex(p);
      const sealed = new Uint8Array(plain.length + 16);
      assert.equal(native.aeadSeal(key, counter, plain, 0, plain.length, sealed, 0), sealed.length);
      assert.equal(Buffer.from(sealed).toString('hex'), c, `transport message ${i + 1}`);
      const opened = new Uint8Array(plain.length);
      assert.equal(native.aeadOpen(key, counter, hex(c), 0, sealed.length, opened, 0), plain.length);
      assert.deepEqual(Buffer.from(opened), plain);
    });
  });
}

test('Noise IK: the prologue is bound into the handshake (a responder with another refuses the initiation)', () => {
  const v = VECTORS[0];
  const m1 = writeIkInitiation(new Symmetric(hex(v.prologue)), dhPair(hex(v.initStatic)), hex(v.initRemoteStatic), dhPair(hex(v.initEphemeral)), hex(v.messages[0][0]));
  assert.equal(readIkInitiation(new Symmetric(), dhPair(hex(v.respStatic)), m1), null, 'ours is "weft tunnel v1"');
  assert.notEqual(readIkInitiation(new Symmetric(hex(v.prologue)), dhPair(hex(v.respStatic)), m1), null);
});
