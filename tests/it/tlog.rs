//! The audit log's core (issue 14): Merkle roots against a reference
//! implementation written here from RFC 6962's definition, proofs that
//! verify and that fail once anything is changed, and signed checkpoints.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use tessera::tlog::merkle::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root, verify_consistency,
    verify_inclusion, Hash,
};
use tessera::tlog::{Checkpoint, CheckpointError, MemoryTree, NoteError, NoteSigner};

use crate::token::support::cases;

fn leaves(n: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("record {i}").as_bytes()))
        .collect()
}

/// MTH(D[n]) straight from RFC 6962 §2.1, over the leaf hashes.
fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

fn flip(proof: &[Hash], at: usize) -> Vec<Hash> {
    let mut changed = proof.to_vec();
    let bit = at % (proof.len() * 256);
    changed[bit / 256][(bit % 256) / 8] ^= 1 << (bit % 8);
    changed
}

fn tree_and_index() -> impl Strategy<Value = (u64, u64)> {
    (1u64..3000).prop_flat_map(|n| (Just(n), 0..n))
}

fn tree_and_sizes() -> impl Strategy<Value = (u64, u64)> {
    (1u64..3000).prop_flat_map(|n| (Just(n), 0..=n))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn the_root_at_every_size_is_rfc_6962s_merkle_tree_hash((n, m) in tree_and_sizes()) {
        let l = leaves(n);
        let tree = MemoryTree::from_leaf_hashes(l.clone());
        prop_assert_eq!(tree.root(), reference_root(&l));
        prop_assert_eq!(root(&tree, m).unwrap(), reference_root(&l[..m as usize]));
    }

    #[test]
    fn an_inclusion_proof_verifies_and_fails_once_anything_changes(
        (n, index) in tree_and_index(),
        other in any::<u64>(),
        at in any::<usize>(),
    ) {
        let l = leaves(n);
        let tree = MemoryTree::from_leaf_hashes(l.clone());
        let r = tree.root();
        let leaf = l[index as usize];
        let proof = inclusion_proof(&tree, index, n).unwrap();
        prop_assert!(proof.len() <= 64);
        verify_inclusion(&leaf, index, n, &proof, &r).unwrap();

        if n > 1 {
            let other_index = (index + 1 + other % (n - 1)) % n;
            prop_assert!(verify_inclusion(&leaf, other_index, n, &proof, &r).is_err());
            let other_leaf = l[other_index as usize];
            prop_assert!(verify_inclusion(&other_leaf, index, n, &proof, &r).is_err());
            prop_assert!(verify_inclusion(&leaf, index, n, &flip(&proof, at), &r).is_err());
        }
        prop_assert!(verify_inclusion(&leaf, index, n, &proof, &leaf_hash(b"other")).is_err());
        // A proof for a smaller tree does not verify against this root.
        if index + 1 < n {
            let old = inclusion_proof(&tree, index, index + 1).unwrap();
            prop_assert!(verify_inclusion(&leaf, index, n, &old, &r).is_err());
        }
    }

    #[test]
    fn a_consistency_proof_verifies_and_fails_once_anything_changes(
        (n, m) in tree_and_sizes(),
        at in any::<usize>(),
    ) {
        let l = leaves(n);
        let tree = MemoryTree::from_leaf_hashes(l.clone());
        let (old, new) = (root(&tree, m).unwrap(), tree.root());
        let proof = consistency_proof(&tree, m, n).unwrap();
        prop_assert!(proof.len() <= 64);
        verify_consistency(m, n, &proof, &old, &new).unwrap();

        if !proof.is_empty() {
            prop_assert!(verify_consistency(m, n, &flip(&proof, at), &old, &new).is_err());
        }
        if 0 < m && m < n {
            prop_assert!(verify_consistency(n, m, &proof, &new, &old).is_err());
            prop_assert!(verify_consistency(m, n, &proof, &new, &new).is_err());
            // A log that rewrote leaf 0 after checkpoint m is caught.
            let mut forked = l.clone();
            forked[0] = leaf_hash(b"rewritten");
            let fork = MemoryTree::from_leaf_hashes(forked);
            let fork_proof = consistency_proof(&fork, m, n).unwrap();
            prop_assert!(verify_consistency(m, n, &fork_proof, &old, &fork.root()).is_err());
        }
        prop_assert!(verify_consistency(m, n, &proof, &leaf_hash(b"x"), &new).is_err());
        // The empty tree is a prefix of every tree: from size 0 any new root
        // is consistent (its signature, not the proof, vouches for it).
        if m > 0 {
            prop_assert!(verify_consistency(m, n, &proof, &old, &leaf_hash(b"x")).is_err());
        }
    }

    #[test]
    fn a_signed_checkpoint_round_trips_and_every_change_is_refused(
        origin in "[a-z0-9.]{1,20}/[a-z0-9/_-]{0,20}",
        size in any::<u64>(),
        root_hash in any::<[u8; 32]>(),
        seed in any::<[u8; 32]>(),
    ) {
        let signer = NoteSigner::new(&origin, SigningKey::from_bytes(&seed)).unwrap();
        let verifier = signer.verifier();
        let checkpoint = Checkpoint::new(&origin, size, root_hash).unwrap();
        let note = checkpoint.sign(&signer).unwrap();
        prop_assert_eq!(&Checkpoint::open(&note, &verifier, &origin).unwrap(), &checkpoint);

        // The same signature lines under a changed body.
        let signatures = note.split_once("\n\n").unwrap().1;
        let resigned = |cp: Checkpoint| format!("{}\n{signatures}", cp.text());
        let bad_signature = CheckpointError::Note(NoteError::BadSignature { name: origin.clone() });
        let changed = [
            Checkpoint::new(&origin, size.wrapping_add(1), root_hash).unwrap(),
            Checkpoint::new(&origin, size, leaf_hash(&root_hash)).unwrap(),
            Checkpoint::new(&format!("{origin}x"), size, root_hash).unwrap(),
        ];
        for cp in changed {
            prop_assert_eq!(
                Checkpoint::open(&resigned(cp), &verifier, &origin),
                Err(bad_signature.clone())
            );
        }
        let elsewhere = format!("{origin}x");
        let refused = Checkpoint::open(&note, &verifier, &elsewhere);
        prop_assert!(
            matches!(refused, Err(CheckpointError::OtherOrigin { .. })),
            "{:?}",
            refused
        );

        // Signed by another key under the same name.
        let mut other_seed = seed;
        other_seed[0] ^= 1;
        let impostor = NoteSigner::new(&origin, SigningKey::from_bytes(&other_seed)).unwrap();
        let forged = checkpoint.sign(&impostor).unwrap();
        prop_assert!(Checkpoint::open(&forged, &verifier, &origin).is_err());
    }
}

#[test]
fn proofs_in_a_tree_of_a_million_leaves_verify() {
    let n = 1_000_000u64;
    let tree = MemoryTree::from_leaf_hashes((0..n).map(|i| leaf_hash(&i.to_be_bytes())));
    let r = tree.root();
    for index in [0, 1, 524_287, 524_288, 999_998, n - 1] {
        let proof = inclusion_proof(&tree, index, n).unwrap();
        assert!(proof.len() <= 20, "{}", proof.len());
        verify_inclusion(&leaf_hash(&index.to_be_bytes()), index, n, &proof, &r).unwrap();
    }
    for m in [1, 500_000, 524_288, 999_999] {
        let proof = consistency_proof(&tree, m, n).unwrap();
        verify_consistency(m, n, &proof, &root(&tree, m).unwrap(), &r).unwrap();
    }
    assert!(inclusion_proof(&tree, n, n).is_err());
}

/// A checkpoint and proofs checked by independent code: Python with the
/// `cryptography` package parses the C2SP note and the verifier key,
/// verifies the Ed25519 signature, recomputes the root from the records and
/// checks both proofs with its own RFC 9162 verification.
#[cfg(feature = "server")]
#[test]
fn python_verifies_a_checkpoint_and_its_proofs_independently() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let Some(python) = crate::python::python_with("cryptography", "tlog interop test") else {
        return;
    };
    let records: Vec<String> = (0..13).map(|i| format!("record {i}")).collect();
    let tree = MemoryTree::from_leaf_hashes(records.iter().map(|r| leaf_hash(r.as_bytes())));
    let signer =
        NoteSigner::new("tessera.example/audit", SigningKey::from_bytes(&[9; 32])).unwrap();
    let note = Checkpoint::new("tessera.example/audit", 13, tree.root())
        .unwrap()
        .sign(&signer)
        .unwrap();
    let hexes = |proof: Vec<Hash>| proof.iter().map(hex::encode).collect::<Vec<_>>();
    let run = |note: &str| {
        let input = serde_json::json!({
            "note": note,
            "verifier_key": signer.verifier().to_string(),
            "records": records,
            "index": 6,
            "inclusion": hexes(inclusion_proof(&tree, 6, 13).unwrap()),
            "from": 5,
            "old_root": hex::encode(root(&tree, 5).unwrap()),
            "consistency": hexes(consistency_proof(&tree, 5, 13).unwrap()),
        });
        let mut child = Command::new(&python)
            .args(["-c", PYTHON_VERIFIER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, output) = run(&note);
    assert!(ok, "{output}");
    assert_eq!(
        output.trim(),
        "checkpoint, inclusion and consistency verified"
    );
    let (ok, output) = run(&note.replacen("\n13\n", "\n14\n", 1));
    assert!(!ok, "a changed size passed: {output}");
}

#[cfg(feature = "server")]
const PYTHON_VERIFIER: &str = r#"
import base64, hashlib, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

d = json.load(sys.stdin)
H = lambda b: hashlib.sha256(b).digest()
leaf = lambda r: H(b"\x00" + r)
node = lambda a, b: H(b"\x01" + a + b)

def mth(ls):
    if len(ls) == 0: return H(b"")
    if len(ls) == 1: return ls[0]
    k = 1
    while k * 2 < len(ls): k *= 2
    return node(mth(ls[:k]), mth(ls[k:]))

name, key_id, key = d["verifier_key"].split("+")
key = base64.b64decode(key)
assert key[0] == 1 and len(key) == 33
assert H(name.encode() + b"\n" + key)[:4].hex() == key_id
note = d["note"]
text, sigs = note[: note.rindex("\n\n") + 1], note[note.rindex("\n\n") + 2 :]
ok = False
for line in sigs.splitlines():
    dash, sname, sig = line.split(" ")
    assert dash == "\u2014"
    sig = base64.b64decode(sig)
    if sname == name and sig[:4].hex() == key_id:
        Ed25519PublicKey.from_public_bytes(key[1:]).verify(sig[4:], text.encode())
        ok = True
assert ok, "no signature by the key"
origin, size, root_b64 = text.splitlines()
size, root = int(size), base64.b64decode(root_b64)
leaves = [leaf(r.encode()) for r in d["records"]]
assert size == len(leaves) and mth(leaves) == root, "root"

# RFC 9162 2.1.3.2
fn, sn, r = d["index"], size - 1, leaves[d["index"]]
for p in map(bytes.fromhex, d["inclusion"]):
    assert sn != 0
    if fn & 1 or fn == sn:
        r = node(p, r)
        while not fn & 1 and fn: fn >>= 1; sn >>= 1
    else:
        r = node(r, p)
    fn >>= 1; sn >>= 1
assert sn == 0 and r == root, "inclusion"

# RFC 9162 2.1.4.2
first, old = d["from"], bytes.fromhex(d["old_root"])
path = [bytes.fromhex(h) for h in d["consistency"]]
assert old == mth(leaves[:first])
if first & (first - 1) == 0: path = [old] + path
fn, sn = first - 1, size - 1
while fn & 1: fn >>= 1; sn >>= 1
fr = sr = path[0]
for c in path[1:]:
    assert sn != 0
    if fn & 1 or fn == sn:
        fr, sr = node(c, fr), node(c, sr)
        while not fn & 1 and fn: fn >>= 1; sn >>= 1
    else:
        sr = node(sr, c)
    fn >>= 1; sn >>= 1
assert sn == 0 and fr == old and sr == root, "consistency"
print("checkpoint, inclusion and consistency verified")
"#;
