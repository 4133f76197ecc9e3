//! The normalisation table shared with the Python build (textscore/data/normtable.txt).
//!
//! Both builds load the same generated file rather than their own Unicode libraries, so they
//! agree on every code point whatever Unicode version each language ships. A code point absent
//! from the table maps to itself.

use std::sync::OnceLock;

/// The table text, compiled in so the extension has no data file to find at run time.
pub const TABLE_TEXT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../textscore/textscore/data/normtable.txt"
));

const BMP: usize = 0x1_0000;

/// Lookup structure: a dense index for the Basic Multilingual Plane (where nearly all text
/// lives), a sorted list for the rest, and one pool holding every replacement.
pub struct Table {
    /// 0 = maps to itself; otherwise 1 + index into `spans`.
    bmp: Vec<u32>,
    /// (code point, span index) above the BMP, sorted by code point.
    astral: Vec<(u32, u32)>,
    /// (start, len) into `pool`.
    spans: Vec<(u32, u32)>,
    pool: Vec<char>,
}

/// A malformed table line (only possible if the data file was edited by hand).
#[derive(Debug, PartialEq, Eq)]
pub struct TableError {
    pub line: usize,
    pub reason: &'static str,
}

fn parse_cp(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 16)
        .ok()
        .filter(|cp| char::from_u32(*cp).is_some())
}

impl Table {
    /// Parses the table format described in workloads/tools/gen_normtable.py.
    pub fn parse(text: &str) -> Result<Table, TableError> {
        let mut table = Table {
            bmp: vec![0; BMP],
            astral: Vec::new(),
            spans: Vec::new(),
            pool: Vec::new(),
        };
        for (number, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason| TableError {
                line: number + 1,
                reason,
            };
            let (src, out) = line
                .split_once(' ')
                .ok_or_else(|| err("expected `SRC OUT`"))?;
            let (lo, hi) = match src.split_once("..") {
                Some((lo, hi)) => (parse_cp(lo), parse_cp(hi)),
                None => (parse_cp(src), parse_cp(src)),
            };
            let (lo, hi) = match (lo, hi) {
                (Some(lo), Some(hi)) if lo <= hi => (lo, hi),
                _ => return Err(err("bad source code point")),
            };
            let start = table.pool.len();
            for part in out.split('+') {
                let cp = parse_cp(part).ok_or_else(|| err("bad output code point"))?;
                // parse_cp only accepts valid scalar values, so this is always Some.
                table.pool.extend(char::from_u32(cp));
            }
            let span = (start as u32, (table.pool.len() - start) as u32);
            table.spans.push(span);
            let id = table.spans.len() as u32;
            for cp in lo..=hi {
                if (cp as usize) < BMP {
                    table.bmp[cp as usize] = id;
                } else if char::from_u32(cp).is_some() {
                    table.astral.push((cp, id));
                }
            }
        }
        table.astral.sort_unstable();
        Ok(table)
    }

    /// The built-in table, parsed once per process.
    pub fn builtin() -> &'static Table {
        static TABLE: OnceLock<Table> = OnceLock::new();
        TABLE.get_or_init(|| match Table::parse(TABLE_TEXT) {
            Ok(table) => table,
            // The file is compiled in and checked by the crate's tests: an unparsable table is
            // a build defect, and an empty table keeps the process alive (it maps nothing).
            Err(_) => Table {
                bmp: vec![0; BMP],
                astral: Vec::new(),
                spans: Vec::new(),
                pool: Vec::new(),
            },
        })
    }

    fn span_of(&self, ch: char) -> u32 {
        let cp = ch as u32;
        if (cp as usize) < BMP {
            self.bmp.get(cp as usize).copied().unwrap_or(0)
        } else {
            match self.astral.binary_search_by_key(&cp, |&(key, _)| key) {
                Ok(at) => self.astral.get(at).map_or(0, |&(_, id)| id),
                Err(_) => 0,
            }
        }
    }

    /// Appends the normalised form of `text` to `out` (one table lookup per code point).
    pub fn normalise_into(&self, text: &str, out: &mut Vec<char>) {
        out.reserve(text.len());
        for ch in text.chars() {
            let id = self.span_of(ch);
            if id == 0 {
                out.push(ch);
            } else if let Some(&(start, len)) = self.spans.get(id as usize - 1) {
                let (start, len) = (start as usize, len as usize);
                out.extend_from_slice(self.pool.get(start..start + len).unwrap_or(&[]));
            }
        }
    }

    /// Number of code points the table changes (for tests and build info).
    pub fn mapped_code_points(&self) -> usize {
        self.bmp.iter().filter(|&&id| id != 0).count() + self.astral.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalise(text: &str) -> String {
        let mut out = Vec::new();
        Table::builtin().normalise_into(text, &mut out);
        out.into_iter().collect()
    }

    #[test]
    fn builtin_table_parses_completely() {
        let table = Table::parse(TABLE_TEXT).expect("table parses");
        let header: usize = TABLE_TEXT
            .lines()
            .nth(1)
            .and_then(|l| l.trim_start_matches("# ").split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("header states the count");
        assert_eq!(table.mapped_code_points(), header);
    }

    #[test]
    fn folds_case_compatibility_and_punctuation() {
        assert_eq!(normalise("Hello, WORLD!"), "hello  world ");
        assert_eq!(normalise("Straße"), "strasse");
        assert_eq!(normalise("ﬁ ①"), "fi 1");
        assert_eq!(normalise("café"), "cafe\u{301}");
        assert_eq!(normalise("\u{1D400}"), "a"); // MATHEMATICAL BOLD CAPITAL A, above the BMP
    }

    #[test]
    fn unassigned_and_private_use_pass_through() {
        assert_eq!(normalise("\u{E000}\u{10FFFF}"), "\u{E000}\u{10FFFF}");
    }

    #[test]
    fn rejects_malformed_lines() {
        assert_eq!(
            Table::parse("0041").err(),
            Some(TableError {
                line: 1,
                reason: "expected `SRC OUT`"
            })
        );
        assert!(Table::parse("D800 0020").is_err());
        assert!(Table::parse("0042..0041 0020").is_err());
        assert!(Table::parse("0041 zz").is_err());
    }
}
