//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys.
//!
//! A note is a text ending in a newline, a blank line, and signature lines
//! `— <key name> <base64(key id || signature)>`. The key id of an Ed25519 key
//! is the first four bytes of `SHA-256(name || 0x0A || 0x01 || public key)`,
//! and its verifier key text is `<name>+<hex key id>+<base64(0x01 || key)>`.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature type byte of Ed25519 in C2SP signed notes.
pub const ED25519: u8 = 0x01;
/// The largest note accepted (the specification asks for at least 16
/// signatures, which may be post-quantum ones of nearly 5 kB).
pub const MAX_NOTE_BYTES: usize = 128 * 1024;
/// The most signature lines accepted in one note.
pub const MAX_SIGNATURES: usize = 32;
/// The longest key name accepted.
pub const MAX_NAME_BYTES: usize = 256;

const SIG_PREFIX: &str = "\u{2014} ";

/// Why a note or a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note is larger than [`MAX_NOTE_BYTES`].
    #[error("the note is larger than {MAX_NOTE_BYTES} bytes")]
    TooLarge,
    /// A control character other than newline.
    #[error("the note contains a control character other than newline")]
    ControlCharacter,
    /// No blank line separates the text from the signatures, or the text is
    /// empty or does not end in a newline.
    #[error("the note has no text followed by a blank line and signatures")]
    Structure,
    /// A signature line that is not `— <name> <base64>`.
    #[error("signature line {line} is malformed")]
    SignatureLine {
        /// The line's position among the signature lines, from 1.
        line: usize,
    },
    /// More than [`MAX_SIGNATURES`] signature lines.
    #[error("the note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// A signature by the expected key that does not verify.
    #[error("the signature by {name} does not verify")]
    BadSignature {
        /// The key's name.
        name: String,
    },
    /// No signature by the expected key.
    #[error("the note has no signature by {name}")]
    NotSigned {
        /// The expected key's name.
        name: String,
    },
    /// A key name that is empty, too long, or has a space or a `+`.
    #[error("a key name must be 1 to {MAX_NAME_BYTES} bytes without spaces or '+'")]
    KeyName,
    /// A verifier key text that is not `<name>+<hex id>+<base64(0x01 || key)>`.
    #[error("the verifier key is not <name>+<8 hex digits>+<base64 of 0x01 and 32 bytes>")]
    VerifierKey,
    /// A verifier key whose id is not the one its name and key give.
    #[error("the verifier key's id does not match its name and public key")]
    KeyIdMismatch,
    /// A public key that is not a usable Ed25519 point.
    #[error("the public key is not a valid Ed25519 key")]
    PublicKey,
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty()
        || name.len() > MAX_NAME_BYTES
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
    {
        return Err(NoteError::KeyName);
    }
    Ok(())
}

/// The C2SP key id of an Ed25519 key:
/// `SHA-256(name || 0x0A || 0x01 || public key)[..4]`, big-endian.
pub fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A named Ed25519 key that signs notes.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    id: u32,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key.
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A signer named `name` (a schema-less URL is recommended).
    pub fn new(name: &str, key: SigningKey) -> Result<Self, NoteError> {
        check_name(name)?;
        let id = key_id(name, &key.verifying_key());
        Ok(Self {
            name: name.to_owned(),
            key,
            id,
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier of this signer's signatures.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            id: self.id,
        }
    }

    /// The signature line of `text` (with its newline).
    fn signature_line(&self, text: &str) -> String {
        let signature = self.key.sign(text.as_bytes());
        let mut bytes = Vec::with_capacity(68);
        bytes.extend_from_slice(&self.id.to_be_bytes());
        bytes.extend_from_slice(&signature.to_bytes());
        format!("{SIG_PREFIX}{} {}\n", self.name, STANDARD.encode(bytes))
    }

    /// The signed note of `text`: the text, a blank line, one signature.
    /// The text must end in a newline and have no blank last line, and no
    /// control characters other than newline.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::ControlCharacter);
        }
        if !text.ends_with('\n') || text.starts_with('\n') || text.ends_with("\n\n") {
            return Err(NoteError::Structure);
        }
        let note = format!("{text}\n{}", self.signature_line(text));
        if note.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge);
        }
        Ok(note)
    }
}

/// A named Ed25519 public key that verifies notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
    id: u32,
}

impl NoteVerifier {
    /// The verifier of `key` under `name`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        if key.is_weak() {
            return Err(NoteError::PublicKey);
        }
        let id = key_id(name, &key);
        Ok(Self {
            name: name.to_owned(),
            key,
            id,
        })
    }

    /// Parses the verifier key text `<name>+<hex key id>+<base64(0x01 || key)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        if text.len() > MAX_NAME_BYTES + 64 {
            return Err(NoteError::VerifierKey);
        }
        // The name holds no '+', but the base64 key may: split twice only.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::VerifierKey);
        };
        if id_hex.len() != 8
            || !id_hex
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(NoteError::VerifierKey);
        }
        let id = u32::from_str_radix(id_hex, 16).map_err(|_| NoteError::VerifierKey)?;
        let bytes = STANDARD
            .decode(key_b64)
            .map_err(|_| NoteError::VerifierKey)?;
        let Some((&ED25519, key)) = bytes.split_first() else {
            return Err(NoteError::VerifierKey);
        };
        let key: [u8; 32] = key.try_into().map_err(|_| NoteError::VerifierKey)?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| NoteError::PublicKey)?;
        let verifier = Self::new(name, key)?;
        if verifier.id != id {
            return Err(NoteError::KeyIdMismatch);
        }
        Ok(verifier)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The Ed25519 public key.
    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Checks `note` and returns its text (with its final newline): the note
    /// must be well formed and carry a valid signature by this key;
    /// signatures by other keys are ignored.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(NoteError::TooLarge);
        }
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::ControlCharacter);
        }
        let split = note.rfind("\n\n").ok_or(NoteError::Structure)?;
        let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
        let Some(signatures) = signatures.strip_suffix('\n') else {
            return Err(NoteError::Structure);
        };
        if text.trim_end_matches('\n').is_empty() || signatures.is_empty() {
            return Err(NoteError::Structure);
        }
        let mut verified = false;
        for (i, line) in signatures.split('\n').enumerate() {
            if i >= MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            let bad_line = NoteError::SignatureLine { line: i + 1 };
            let (name, sig) = line
                .strip_prefix(SIG_PREFIX)
                .and_then(|rest| rest.split_once(' '))
                .ok_or(bad_line.clone())?;
            check_name(name).map_err(|_| bad_line.clone())?;
            let sig = STANDARD.decode(sig).map_err(|_| bad_line.clone())?;
            let Some((id, sig)) = sig.split_first_chunk::<4>() else {
                return Err(bad_line);
            };
            if sig.is_empty() {
                return Err(bad_line);
            }
            if name != self.name || u32::from_be_bytes(*id) != self.id {
                continue;
            }
            let bad_signature = NoteError::BadSignature {
                name: self.name.clone(),
            };
            let sig = Signature::from_slice(sig).map_err(|_| bad_signature.clone())?;
            self.key
                .verify_strict(text.as_bytes(), &sig)
                .map_err(|_| bad_signature)?;
            verified = true;
        }
        if !verified {
            return Err(NoteError::NotSigned {
                name: self.name.clone(),
            });
        }
        Ok(text)
    }
}

impl fmt::Display for NoteVerifier {
    /// The verifier key text: `<name>+<hex key id>+<base64(0x01 || key)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = Vec::with_capacity(33);
        bytes.push(ED25519);
        bytes.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.id,
            STANDARD.encode(bytes)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8, name: &str) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    #[test]
    fn key_id_is_the_first_four_bytes_of_the_c2sp_hash() {
        let s = signer(1, "log.example/a");
        let v = s.verifier();
        let mut input = b"log.example/a\n\x01".to_vec();
        input.extend_from_slice(v.key().as_bytes());
        let digest = Sha256::digest(&input);
        assert_eq!(v.id().to_be_bytes(), digest[..4]);
    }

    #[test]
    fn a_verifier_key_whose_base64_holds_a_plus_parses() {
        let with_plus: Vec<NoteVerifier> = (0..=255u8)
            .map(|seed| signer(seed, "log.example/p").verifier())
            .filter(|v| v.to_string().matches('+').count() > 2)
            .collect();
        assert!(!with_plus.is_empty());
        for v in with_plus {
            assert_eq!(NoteVerifier::parse(&v.to_string()).unwrap(), v);
        }
    }

    #[test]
    fn verifier_key_text_round_trips_and_a_wrong_id_is_refused() {
        let v = signer(2, "log.example/b").verifier();
        let text = v.to_string();
        assert!(text.starts_with(&format!("log.example/b+{:08x}+A", v.id())));
        assert_eq!(NoteVerifier::parse(&text).unwrap(), v);
        let other_id = format!("log.example/b+{:08x}+{}", v.id() ^ 1, &text[23..]);
        assert_eq!(
            NoteVerifier::parse(&other_id),
            Err(NoteError::KeyIdMismatch)
        );
        // Renamed: the id no longer matches.
        let renamed = text.replacen("log.example/b", "log.example/c", 1);
        assert_eq!(NoteVerifier::parse(&renamed), Err(NoteError::KeyIdMismatch));
        for bad in [
            "",
            "a+b",
            "a+0000000g+AQ==",
            "a+00000000+AQ==",
            "+00000000+x",
            "a+b+c+d",
        ] {
            assert!(NoteVerifier::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_note_opens_with_its_key_and_ignores_unknown_signatures() {
        let s = signer(3, "log.example/c");
        let other = signer(4, "witness.example/w");
        let text = "hello\nworld\n";
        let note = s.sign(text).unwrap();
        assert_eq!(s.verifier().open(&note).unwrap(), text);
        // A co-signature by an unknown key is ignored.
        let cosigned = format!("{note}{}", other.signature_line(text));
        assert_eq!(s.verifier().open(&cosigned).unwrap(), text);
        // Only the unknown key: not signed by the expected one.
        assert_eq!(
            other.verifier().open(&note),
            Err(NoteError::NotSigned {
                name: "witness.example/w".into()
            })
        );
        // Same name and id, another key: the signature does not verify.
        let impostor = NoteVerifier {
            key: other.verifier().key,
            ..s.verifier()
        };
        assert_eq!(
            impostor.open(&note),
            Err(NoteError::BadSignature {
                name: "log.example/c".into()
            })
        );
    }

    #[test]
    fn malformed_notes_are_refused_with_a_reason() {
        let s = signer(5, "log.example/d");
        let v = s.verifier();
        let note = s.sign("a\n").unwrap();
        let cases = [
            (note.replace("a\n", "b\n"), "changed text"),
            (note.trim_end().to_owned(), "no final newline"),
            (note.replace("\n\n", "\n"), "no blank line"),
            (note.replace('\u{2014}', "-"), "hyphen for em dash"),
            (format!("{note}\u{2014} x\n"), "line without signature"),
            (format!("{note}\u{2014} x !!!!\n"), "bad base64"),
            (format!("{note}\u{2014} x AAAA\n"), "too short"),
            (note.replace('a', "a\r"), "control character"),
            (format!("\n{note}"), "leading blank"),
        ];
        for (bad, why) in cases {
            assert!(v.open(&bad).is_err(), "{why}: {bad:?}");
        }
        let many = format!("{note}{}", s.signature_line("a\n").repeat(MAX_SIGNATURES));
        assert_eq!(v.open(&many), Err(NoteError::TooManySignatures));
        let huge = format!("{}\n\n", "x".repeat(MAX_NOTE_BYTES));
        assert_eq!(v.open(&huge), Err(NoteError::TooLarge));
        assert_eq!(s.sign("no newline"), Err(NoteError::Structure));
        assert_eq!(s.sign("blank\n\n"), Err(NoteError::Structure));
        assert!(NoteSigner::new("has space", SigningKey::from_bytes(&[1; 32])).is_err());
        assert!(NoteSigner::new("a+b", SigningKey::from_bytes(&[1; 32])).is_err());
    }
}
