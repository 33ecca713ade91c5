//! How the client commands print: aligned tables for people, and kcat-style `--format`
//! templates for records.

use std::fmt::Write as _;

/// Prints rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            let _ = write!(text, "{cell:<width$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// One piece of a parsed `--format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    KeyLen,
    Value,
    ValueLen,
    Headers,
}

/// A kcat `-f` template: `%t` topic, `%p` partition, `%o` offset, `%T` timestamp (ms), `%k` key,
/// `%K` key length, `%s` value, `%S` value length, `%h` headers (`k=v,k=v`), `%%`, `\n`, `\t`.
#[derive(Debug, Clone)]
pub struct RecordFormat {
    pieces: Vec<Piece>,
}

/// The parts of a record a template can show.
#[derive(Debug)]
pub struct RecordView<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

impl RecordFormat {
    pub fn parse(template: &str) -> anyhow::Result<RecordFormat> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = template.chars();
        while let Some(c) = chars.next() {
            let piece = match c {
                '%' => match chars.next() {
                    Some('t') => Piece::Topic,
                    Some('p') => Piece::Partition,
                    Some('o') => Piece::Offset,
                    Some('T') => Piece::Timestamp,
                    Some('k') => Piece::Key,
                    Some('K') => Piece::KeyLen,
                    Some('s') => Piece::Value,
                    Some('S') => Piece::ValueLen,
                    Some('h') => Piece::Headers,
                    Some('%') => {
                        text.push('%');
                        continue;
                    }
                    Some(other) => anyhow::bail!(
                        "--format {template:?}: unknown %{other} (use %t %p %o %T %k %K %s %S %h %%)"
                    ),
                    None => anyhow::bail!("--format {template:?}: ends with a lone %"),
                },
                '\\' => {
                    match chars.next() {
                        Some('n') => text.push('\n'),
                        Some('t') => text.push('\t'),
                        Some('r') => text.push('\r'),
                        Some('\\') => text.push('\\'),
                        Some(other) => {
                            text.push('\\');
                            text.push(other);
                        }
                        None => text.push('\\'),
                    }
                    continue;
                }
                c => {
                    text.push(c);
                    continue;
                }
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(RecordFormat { pieces })
    }

    /// Appends the formatted record to `out` (bytes: values need not be UTF-8).
    pub fn write(&self, record: &RecordView<'_>, out: &mut Vec<u8>) {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.extend_from_slice(t.as_bytes()),
                Piece::Topic => out.extend_from_slice(record.topic.as_bytes()),
                Piece::Partition => out.extend_from_slice(record.partition.to_string().as_bytes()),
                Piece::Offset => out.extend_from_slice(record.offset.to_string().as_bytes()),
                Piece::Timestamp => {
                    let ts = record.timestamp.unwrap_or(-1);
                    out.extend_from_slice(ts.to_string().as_bytes());
                }
                Piece::Key => out.extend_from_slice(record.key.unwrap_or_default()),
                Piece::KeyLen => out.extend_from_slice(len(record.key).as_bytes()),
                Piece::Value => out.extend_from_slice(record.value.unwrap_or_default()),
                Piece::ValueLen => out.extend_from_slice(len(record.value).as_bytes()),
                Piece::Headers => {
                    for (i, (k, v)) in record.headers.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(k.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(v.unwrap_or_default());
                    }
                }
            }
        }
    }
}

/// kcat prints -1 for a null key or value.
fn len(bytes: Option<&[u8]>) -> String {
    bytes.map_or("-1".to_string(), |b| b.len().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> RecordView<'static> {
        RecordView {
            topic: "orders",
            partition: 2,
            offset: 41,
            timestamp: Some(1_700_000_000_000),
            key: Some(b"k1"),
            value: Some(b"hello"),
            headers: vec![("trace", Some(b"abc")), ("n", None)],
        }
    }

    fn render(template: &str) -> String {
        let mut out = Vec::new();
        RecordFormat::parse(template)
            .unwrap()
            .write(&view(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn kcat_template_fields_render() {
        assert_eq!(
            render("%t/%p@%o %T %k=%s (%K,%S) [%h] 100%%\\n"),
            "orders/2@41 1700000000000 k1=hello (2,5) [trace=abc,n=] 100%\n"
        );
    }

    #[test]
    fn unknown_directive_is_an_error_naming_it() {
        let err = RecordFormat::parse("%q").unwrap_err().to_string();
        assert!(err.contains("unknown %q"), "{err}");
        assert!(RecordFormat::parse("50%").is_err());
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["TOPIC", "PARTITIONS"],
            &[
                vec!["a".into(), "1".into()],
                vec!["longer".into(), "12".into()],
            ],
        );
        assert_eq!(t, "TOPIC   PARTITIONS\na       1\nlonger  12\n");
    }
}
