//! Tampering: whatever is changed in a token's bytes, it is never allowed,
//! and the structural attacks get the reason they deserve.

use biscuit_auth::{Algorithm, KeyPair};
use tessera::token::*;

use super::support::*;

/// A bound token with an audience, delegated once and attenuated once:
/// authority, delegation (third-party) and attenuation (first-party) blocks.
struct Chain3 {
    issuer: Issuer,
    sub: KeyPair,
    token: String,
}

fn chain3() -> Chain3 {
    let mut issuer = Issuer::new();
    // A second live root key, so a changed root key id can land on it.
    issuer.keys.insert(3, keypair(3).public()).unwrap();
    let agent = keypair(10);
    let sub = keypair(11);
    let m = issuer.mint(&cap("docs:read", "docs/*", Some(SERVICE), Some(&agent)));
    let n = Narrowing {
        resource: Some(ResourcePattern::parse("docs/a/*").unwrap()),
        ..Default::default()
    };
    let t = delegate(
        &m.token,
        &agent,
        &agent_id("agent://acme/sub"),
        &sub.public(),
        &n,
        &issuer.limits,
    )
    .unwrap();
    let n = Narrowing {
        expires_at: Some(t0() + secs(120)),
        ..Default::default()
    };
    let token = attenuate(&t, &n, &issuer.limits).unwrap();
    Chain3 { issuer, sub, token }
}

fn agent_id(s: &str) -> AgentId {
    AgentId::parse(s).unwrap()
}

const TAMPER_REASONS: [Reason; 4] = [
    Reason::Malformed,
    Reason::BadSignature,
    Reason::UnknownKeyId,
    Reason::TooLarge,
];

fn assert_tampered_denied(c: &Chain3, bytes: &[u8], r: &Request, what: &str) {
    match authorize_bytes(bytes, &c.issuer.keys, r, |_| false, &c.issuer.limits) {
        Ok(g) => panic!("{what}: tampered token allowed: {g:?}"),
        Err(d) => assert!(
            TAMPER_REASONS.contains(&d.reason),
            "{what}: unexpected reason {d}"
        ),
    }
}

/// Flips `mask` into every `stride`-th byte starting at `start`.
fn flip_each(
    c: &Chain3,
    token: &str,
    proven: &KeyPair,
    start: usize,
    stride: usize,
    mask: u8,
) -> usize {
    let r = req("docs:read", "docs/a/1", Some(SERVICE), t0(), Some(proven));
    c.issuer.check(token, &r).unwrap();
    let bytes = bytes_of(token);
    let mut n = 0;
    for i in (start..bytes.len()).step_by(stride) {
        let mut t = bytes.clone();
        t[i] ^= mask;
        assert_tampered_denied(c, &t, &r, &format!("byte {i} ^ {mask:#04x}"));
        n += 1;
    }
    n
}

#[test]
fn one_flipped_byte_anywhere_in_a_minted_token_is_never_allowed() {
    let c = chain3();
    let agent = keypair(10);
    let m = c
        .issuer
        .mint(&cap("docs:read", "docs/*", Some(SERVICE), Some(&agent)));
    // Every position, low bit.
    let n = flip_each(&c, &m.token, &agent, 0, 1, 0x01);
    assert_eq!(n, bytes_of(&m.token).len());
}

#[test]
fn one_flipped_byte_in_a_delegated_and_attenuated_token_is_never_allowed() {
    // Debug-build signature checks are slow (tens of ms), so a dense sample:
    // every fourth byte, at two offsets with different masks.
    let c = chain3();
    let sub = keypair(11);
    for (start, mask) in [(0, 0x01), (2, 0xff)] {
        assert!(flip_each(&c, &c.token, &sub, start, 4, mask) > 200);
    }
}

#[test]
fn truncation_at_any_length_is_never_allowed() {
    let c = chain3();
    let bytes = bytes_of(&c.token);
    let mut cuts: Vec<usize> = (0..bytes.len()).step_by(7).collect();
    cuts.extend([
        bytes.len() - 1,
        bytes.len() - 2,
        bytes.len() - 33,
        bytes.len() - 65,
    ]);
    for cut in cuts {
        let d = authorize_bytes(
            &bytes[..cut],
            &c.issuer.keys,
            &req("docs:read", "docs/a/1", Some(SERVICE), t0(), Some(&c.sub)),
            |_| false,
            &c.issuer.limits,
        )
        .unwrap_err();
        assert!(
            matches!(d.reason, Reason::Malformed | Reason::BadSignature),
            "cut at {cut}: {d}"
        );
    }
}

#[test]
fn swapped_blocks_have_a_bad_signature() {
    let c = chain3();
    let r = req("docs:read", "docs/a/1", Some(SERVICE), t0(), Some(&c.sub));
    let msg = outer(&c.token);
    assert_eq!(msg.blocks.len(), 2);
    let mut swapped = msg.clone();
    swapped.blocks.swap(0, 1);
    assert_eq!(
        c.issuer.denied(&reencode(&swapped), &r),
        Reason::BadSignature
    );
    // The authority block swapped with the first block, too.
    let mut swapped = msg.clone();
    std::mem::swap(&mut swapped.authority, &mut swapped.blocks[1]);
    assert_eq!(
        c.issuer.denied(&reencode(&swapped), &r),
        Reason::BadSignature
    );
    // A delegation block cannot stand as the authority block at all:
    // biscuit-auth refuses an authority block with an external signature
    // while decoding, before any signature is checked.
    let mut swapped = msg.clone();
    std::mem::swap(&mut swapped.authority, &mut swapped.blocks[0]);
    assert_eq!(c.issuer.denied(&reencode(&swapped), &r), Reason::Malformed);
}

#[test]
fn removing_the_last_block_to_undo_an_attenuation_has_a_bad_signature() {
    let c = chain3();
    // The attenuation limits the expiry to t0 + 120 s; dropping it would
    // restore t0 + 300 s.
    let late = req(
        "docs:read",
        "docs/a/1",
        Some(SERVICE),
        t0() + secs(200),
        Some(&c.sub),
    );
    assert_eq!(c.issuer.denied(&c.token, &late), Reason::Expired);
    let mut msg = outer(&c.token);
    msg.blocks.pop();
    assert_eq!(
        c.issuer.denied(&reencode(&msg), &late),
        Reason::BadSignature
    );
}

#[test]
fn stripping_the_holder_signature_from_a_delegation_block_has_a_bad_signature() {
    let c = chain3();
    let r = req("docs:read", "docs/a/1", Some(SERVICE), t0(), Some(&c.sub));
    let mut msg = outer(&c.token);
    assert!(msg.blocks[0].external_signature.is_some());
    msg.blocks[0].external_signature = None;
    assert_eq!(c.issuer.denied(&reencode(&msg), &r), Reason::BadSignature);
}

#[test]
fn root_key_id_changed_to_another_live_key_has_a_bad_signature() {
    let c = chain3();
    let r = req("docs:read", "docs/a/1", Some(SERVICE), t0(), Some(&c.sub));
    let mut msg = outer(&c.token);
    assert_eq!(msg.root_key_id, Some(1));
    msg.root_key_id = Some(3);
    assert!(c.issuer.keys.get(3).is_some());
    assert_eq!(c.issuer.denied(&reencode(&msg), &r), Reason::BadSignature);
    msg.root_key_id = Some(4);
    assert_eq!(c.issuer.denied(&reencode(&msg), &r), Reason::UnknownKeyId);
}

#[test]
fn p256_root_where_the_key_id_maps_to_ed25519_has_a_bad_signature() {
    let issuer = Issuer::new();
    let holder = keypair(10);
    let p256 = RootKeyPair::new(1, KeyPair::new_with_algorithm(Algorithm::Secp256r1));
    let m = mint(
        &cap("docs:read", "docs/*", None, Some(&holder)),
        &p256,
        t0(),
    )
    .unwrap();
    let r = req("docs:read", "docs/a/1", None, t0(), Some(&holder));
    assert_eq!(issuer.denied(&m.token, &r), Reason::BadSignature);
    // The same token is fine for a key set that holds the P-256 key, so the
    // denial above is about the algorithm and key, not the token's shape.
    let p256_keys = KeySet::single(1, p256.keypair.public());
    assert!(authorize(&m.token, &p256_keys, &r, |_| false, &issuer.limits).is_ok());
}
