//! `KNOWN_DIFFERENCES.md`: the one list of deliberate (or known-buggy) differences.
//!
//! Each entry is a Markdown list line: `` - `case/step` reason `` (or `` `case` `` for every step
//! of a case). A reason starting with `BUG:` is a Vltava bug still to fix.

use std::collections::BTreeMap;

pub struct Known {
    entries: BTreeMap<String, String>,
}

impl Known {
    pub fn parse(text: &str) -> Known {
        let mut entries = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix("- `") else {
                continue;
            };
            let Some((key, reason)) = rest.split_once('`') else {
                continue;
            };
            let reason = reason.trim_start_matches([' ', ':', '—', '-']).trim();
            entries.insert(key.to_string(), reason.to_string());
        }
        Known { entries }
    }

    pub fn load() -> Result<Known, String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/KNOWN_DIFFERENCES.md");
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        Ok(Known::parse(&text))
    }

    /// The reason a step of a case may differ, if it is listed (by step or by whole case).
    pub fn reason(&self, case: &str, step: &str) -> Option<(&str, &str)> {
        let key = format!("{case}/{step}");
        self.entries
            .get_key_value(&key)
            .or_else(|| self.entries.get_key_value(case))
            .or_else(|| {
                // `*` matches any run of characters: `case/*/remote.*`.
                self.entries
                    .iter()
                    .find(|(k, _)| k.contains('*') && wildcard(k, &key))
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

/// Does `pattern` (with `*` for any run of characters) match all of `text`?
fn wildcard(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries() {
        let k = Known::parse("# title\n- `a/b` — why\n- `c`: BUG: broken\n- `d/x.*` glob\ntext\n");
        assert_eq!(k.reason("d", "x.y"), Some(("d/x.*", "glob")));
        assert_eq!(k.reason("d", "y"), None);
        assert!(wildcard("a/*/r.*", "a/all/r.x"));
        assert!(!wildcard("a/*/r.*", "a/all/s.x"));
        assert!(wildcard("a", "a"));
        assert!(!wildcard("a", "ab"));
        assert_eq!(k.reason("a", "b"), Some(("a/b", "why")));
        assert_eq!(k.reason("a", "x"), None);
        assert_eq!(k.reason("c", "any"), Some(("c", "BUG: broken")));
    }
}
