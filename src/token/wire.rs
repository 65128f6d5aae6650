//! Reading the Biscuit wire format without verifying it.
//!
//! Two jobs, both cheap and both before or beside biscuit-auth's own parsing:
//! - [`scan`] walks the outer protobuf message to count blocks and find each
//!   block's payload, so oversized tokens are refused before any block is
//!   decoded or any signature is checked;
//! - [`block_facts`] decodes the facts of one block (the authority block or a
//!   third-party block, whose symbol tables start from the default table), so
//!   the verifier can read `agent`, `agent_key` and `delegated_to` per block.
//!
//! Nothing here is trusted on its own: callers only use it to refuse early,
//! or on tokens whose signatures biscuit-auth has already verified.

use std::sync::LazyLock;

use biscuit_auth::datalog::SymbolTable;
use biscuit_auth::format::schema;
use prost::Message;

/// Symbol ids at or above this offset index the block's own symbol list.
const SYMBOL_OFFSET: u64 = 1024;

static DEFAULT_SYMBOLS: LazyLock<SymbolTable> = LazyLock::new(SymbolTable::new);

/// Why the outer structure could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes are not a well-formed Biscuit container.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// More blocks than the configured limit.
    #[error("token has more than {max} blocks")]
    TooManyBlocks {
        /// The limit that was exceeded.
        max: usize,
    },
}

/// The outer layout of a token: its root key id and each block's payload.
#[derive(Debug)]
pub struct Layout<'a> {
    /// The unsigned root key id hint, if present.
    pub root_key_id: Option<u32>,
    /// Payload of each block; index 0 is the authority block.
    pub payloads: Vec<&'a [u8]>,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self
                .buf
                .split_first()
                .ok_or(WireError::Malformed("truncated varint"))?;
            self.buf = rest;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::Malformed("varint too long"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], WireError> {
        let n = usize::try_from(n).map_err(|_| WireError::Malformed("length overflow"))?;
        if n > self.buf.len() {
            return Err(WireError::Malformed("truncated field"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// Reads one field: (field number, wire type, length-delimited bytes if any).
    fn field(&mut self) -> Result<(u64, Option<&'a [u8]>, u64), WireError> {
        let tag = self.varint()?;
        let (number, wire_type) = (tag >> 3, tag & 7);
        match wire_type {
            0 => Ok((number, None, self.varint()?)),
            1 => self.take(8).map(|_| (number, None, 0)),
            2 => {
                let len = self.varint()?;
                Ok((number, Some(self.take(len)?), 0))
            }
            5 => self.take(4).map(|_| (number, None, 0)),
            _ => Err(WireError::Malformed("unsupported wire type")),
        }
    }
}

/// Payload (field 1) of a `SignedBlock` message.
fn signed_block_payload(signed: &[u8]) -> Result<&[u8], WireError> {
    let mut r = Reader { buf: signed };
    let mut payload = None;
    while !r.buf.is_empty() {
        if let (1, Some(bytes), _) = r.field()? {
            payload = Some(bytes);
        }
    }
    payload.ok_or(WireError::Malformed("block without payload"))
}

/// Walks the outer message, refusing more than `max_blocks` blocks (authority
/// included) as soon as the count passes the limit.
pub fn scan(token: &[u8], max_blocks: usize) -> Result<Layout<'_>, WireError> {
    let mut r = Reader { buf: token };
    let mut root_key_id = None;
    let mut authority = None;
    let mut others: Vec<&[u8]> = Vec::new();
    let mut has_proof = false;
    while !r.buf.is_empty() {
        match r.field()? {
            (1, None, v) => {
                root_key_id = Some(
                    u32::try_from(v).map_err(|_| WireError::Malformed("root key id overflow"))?,
                )
            }
            (2, Some(b), _) => authority = Some(b),
            (3, Some(b), _) => {
                if others.len() + 2 > max_blocks {
                    return Err(WireError::TooManyBlocks { max: max_blocks });
                }
                others.push(b);
            }
            (4, Some(_), _) => has_proof = true,
            (1..=4, _, _) => return Err(WireError::Malformed("field has the wrong wire type")),
            _ => {}
        }
    }
    let authority = authority.ok_or(WireError::Malformed("no authority block"))?;
    if !has_proof {
        return Err(WireError::Malformed("no proof"));
    }
    let mut payloads = Vec::with_capacity(others.len() + 1);
    payloads.push(signed_block_payload(authority)?);
    for b in others {
        payloads.push(signed_block_payload(b)?);
    }
    Ok(Layout {
        root_key_id,
        payloads,
    })
}

/// A term of a decoded fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A date, in seconds since the Unix epoch.
    Date(u64),
    /// A boolean.
    Bool(bool),
    /// Any other term (bytes, sets, arrays, maps, null).
    Other,
}

/// A fact as it stands in one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFact {
    /// The predicate name.
    pub name: String,
    /// The terms, in order.
    pub terms: Vec<Value>,
}

/// Decodes the facts of a block whose symbol table starts from the default
/// table: the authority block, or a third-party block.
pub fn block_facts(payload: &[u8]) -> Result<Vec<RawFact>, WireError> {
    let block = schema::Block::decode(payload)
        .map_err(|_| WireError::Malformed("block does not decode"))?;
    facts_of(&block, &[])
}

/// The facts of every block, each block's symbols resolved as biscuit does:
/// the authority block and first-party blocks share one table that grows
/// block by block; a third-party block (`third_party[i]`) has its own.
pub fn chain_facts(
    payloads: &[impl AsRef<[u8]>],
    third_party: &[bool],
) -> Result<Vec<Vec<RawFact>>, WireError> {
    let mut shared: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(payloads.len());
    for (i, payload) in payloads.iter().enumerate() {
        let block = schema::Block::decode(payload.as_ref())
            .map_err(|_| WireError::Malformed("block does not decode"))?;
        if third_party.get(i).copied().unwrap_or(false) {
            out.push(facts_of(&block, &[])?);
        } else {
            out.push(facts_of(&block, &shared)?);
            shared.extend(block.symbols);
        }
    }
    Ok(out)
}

/// The facts of `block`, whose own symbols follow `shared`.
fn facts_of(block: &schema::Block, shared: &[String]) -> Result<Vec<RawFact>, WireError> {
    let symbol = |i: u64| -> Result<String, WireError> {
        if i < SYMBOL_OFFSET {
            DEFAULT_SYMBOLS.get_symbol(i).map(str::to_owned)
        } else {
            usize::try_from(i - SYMBOL_OFFSET)
                .ok()
                .and_then(|j| match j.checked_sub(shared.len()) {
                    None => shared.get(j),
                    Some(k) => block.symbols.get(k),
                })
                .cloned()
        }
        .ok_or(WireError::Malformed("unknown symbol"))
    };
    block
        .facts
        .iter()
        .map(|f| {
            let terms = f
                .predicate
                .terms
                .iter()
                .map(|t| {
                    Ok(match &t.content {
                        Some(schema::term::Content::String(i)) => Value::Str(symbol(*i)?),
                        Some(schema::term::Content::Integer(i)) => Value::Int(*i),
                        Some(schema::term::Content::Date(d)) => Value::Date(*d),
                        Some(schema::term::Content::Bool(b)) => Value::Bool(*b),
                        _ => Value::Other,
                    })
                })
                .collect::<Result<Vec<_>, WireError>>()?;
            Ok(RawFact {
                name: symbol(f.predicate.name)?,
                terms,
            })
        })
        .collect()
}

/// The predicate names in the body of check `check` of block `block`.
///
/// `third_party[i]` says whether block `i` carries an external signature:
/// such a block resolves symbols against its own table, while the authority
/// block and first-party blocks share one table that grows block by block.
/// Used to explain a failed check from its structure, not its printed text.
pub fn check_predicates(
    payloads: &[&[u8]],
    third_party: &[bool],
    block: usize,
    check: usize,
) -> Result<Vec<String>, WireError> {
    let mut shared: Vec<String> = Vec::new();
    for (i, payload) in payloads.iter().enumerate().take(block + 1) {
        let decoded = schema::Block::decode(*payload)
            .map_err(|_| WireError::Malformed("block does not decode"))?;
        let own = third_party.get(i).copied().unwrap_or(false);
        if i < block {
            if !own {
                shared.extend(decoded.symbols);
            }
            continue;
        }
        let table: Vec<&str> = if own {
            decoded.symbols.iter().map(String::as_str).collect()
        } else {
            shared
                .iter()
                .chain(decoded.symbols.iter())
                .map(String::as_str)
                .collect()
        };
        let name = |i: u64| -> Option<String> {
            if i < SYMBOL_OFFSET {
                DEFAULT_SYMBOLS.get_symbol(i).map(str::to_owned)
            } else {
                usize::try_from(i - SYMBOL_OFFSET)
                    .ok()
                    .and_then(|j| table.get(j))
                    .map(|s| (*s).to_owned())
            }
        };
        let c = decoded
            .checks
            .get(check)
            .ok_or(WireError::Malformed("no such check"))?;
        return c
            .queries
            .iter()
            .flat_map(|q| q.body.iter())
            .map(|p| name(p.name).ok_or(WireError::Malformed("unknown symbol")))
            .collect();
    }
    Err(WireError::Malformed("no such block"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bytes in [&b""[..], b"\xff", b"\x12\xff\x01", b"\x08", b"\x0b"] {
            assert!(matches!(scan(bytes, 32), Err(WireError::Malformed(_))));
        }
    }

    #[test]
    fn varint_of_more_than_ten_bytes_is_refused() {
        let bytes = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(matches!(scan(&bytes, 32), Err(WireError::Malformed(_))));
    }
}
