//! The low level of configuration parsing: `server.properties` and `--override k=v` pairs into a
//! map of raw strings, each remembering where it came from so errors can name `file:line`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// Where a raw value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `path:line` of a properties file (1-based line).
    File { path: PathBuf, line: usize },
    /// A `--override key=value` argument.
    Override,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Override => f.write_str("--override"),
        }
    }
}

/// One raw `key=value` with its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    pub value: String,
    pub origin: Origin,
}

/// Raw configuration: every key as typed, later entries (overrides) replacing earlier ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawConfig {
    entries: BTreeMap<String, RawValue>,
}

impl RawConfig {
    /// Reads a Java properties file (full grammar: continuations, `=`/`:`/space separators, escapes).
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let file = std::fs::File::open(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(std::io::BufReader::new(file), path)
    }

    /// Parses properties text; `path` is used only in error messages and origins.
    pub fn from_reader(reader: impl std::io::Read, path: &Path) -> Result<RawConfig, ConfigError> {
        let mut raw = RawConfig::default();
        for line in java_properties::PropertiesIter::new(reader) {
            let line = line.map_err(|e| ConfigError::Syntax {
                path: path.to_path_buf(),
                line: e.line_number(),
                message: e.to_string(),
            })?;
            let line_number = line.line_number();
            if let java_properties::LineContent::KVPair(key, value) = line.consume_content() {
                raw.insert(
                    key.trim().to_string(),
                    value.trim().to_string(),
                    Origin::File {
                        path: path.to_path_buf(),
                        line: line_number,
                    },
                );
            }
        }
        Ok(raw)
    }

    /// Applies one `--override key=value`.
    pub fn apply_override(&mut self, pair: &str) -> Result<(), ConfigError> {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| ConfigError::BadOverride(pair.to_string()))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(ConfigError::BadOverride(pair.to_string()));
        }
        self.insert(key.to_string(), value.trim().to_string(), Origin::Override);
        Ok(())
    }

    pub fn insert(&mut self, key: String, value: String, origin: Origin) {
        self.entries.insert(key, RawValue { value, origin });
    }

    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.entries.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &RawValue)> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_carry_line_numbers_and_overrides_win() {
        let text = "# comment\nnode.id=3\n\nlisteners = PLAINTEXT://a:1,\\\n  CONTROLLER://a:2\n";
        let mut raw = RawConfig::from_reader(text.as_bytes(), Path::new("s.properties")).unwrap();
        let node = raw.get("node.id").unwrap();
        assert_eq!(node.value, "3");
        assert_eq!(node.origin.to_string(), "s.properties:2");
        assert_eq!(
            raw.get("listeners").unwrap().value,
            "PLAINTEXT://a:1,CONTROLLER://a:2"
        );
        raw.apply_override("node.id=7").unwrap();
        assert_eq!(raw.get("node.id").unwrap().value, "7");
        assert_eq!(raw.get("node.id").unwrap().origin, Origin::Override);
        assert!(raw.apply_override("novalue").is_err());
    }
}
