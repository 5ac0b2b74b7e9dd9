//! vigil/base/ids.py's stable ids, for the records the compiled engine makes itself (one a
//! health record: a call into Python for each was 6% of the engine's time).

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;

/// vigil.base.ids.stable_id: `prefix`, `_`, and 24 hex digits of BLAKE2b over the parts,
/// joined by U+001F.
pub fn stable_id(prefix: &str, parts: &[&str]) -> String {
    let mut hasher = Blake2bVar::new(12).expect("12 bytes is a BLAKE2b output size");
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            hasher.update(b"\x1f");
        }
        hasher.update(part.as_bytes());
    }
    let mut digest = [0u8; 12];
    hasher
        .finalize_variable(&mut digest)
        .expect("the buffer is the output size");
    let mut id = String::with_capacity(prefix.len() + 25);
    id.push_str(prefix);
    id.push('_');
    for byte in digest {
        id.push(char::from_digit(u32::from(byte >> 4), 16).expect("a hex digit"));
        id.push(char::from_digit(u32::from(byte & 15), 16).expect("a hex digit"));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::stable_id;

    #[test]
    fn is_python_s_stable_id() {
        // vigil.base.ids.stable_id("health", "acme", "2026-03-02T10:00:00Z", 87, "green"), and
        // one with a character outside ASCII
        let id = stable_id("health", &["acme", "2026-03-02T10:00:00Z", "87", "green"]);
        assert_eq!(id, "health_0e9f68d342c11b1bccf22767");
        let parts = ["tenant-\u{e9}", "2026-03-02T10:00:00.5Z", "0", "red"];
        assert_eq!(
            stable_id("health", &parts),
            "health_2192ea1280b4eb75bdcb0dfd"
        );
    }
}
