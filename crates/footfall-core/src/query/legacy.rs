//! Plausible Stats API v1's legacy filter syntax:
//! `visit:browser==Chrome|Firefox;event:page==/blog/**;visit:country!=DE`.
//! `==` / `!=` with `|` for alternatives; `*` and `**` are page wildcards, turned into
//! anchored regexes; `~` / `!~` are v1's contains.

use super::model::*;
use super::parse::{check_regex, MAX_FILTER_CONDITIONS, MAX_FILTER_VALUES};
use super::QueryError;

fn wildcard_regex(v: &str) -> String {
    let mut out = String::from("^");
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '*' {
            if chars.peek() == Some(&'*') {
                chars.next();
                out.push_str(".*");
            } else {
                out.push_str("[^/]*");
            }
        } else {
            out.push_str(&regex::escape(&c.to_string()));
        }
    }
    out.push('$');
    out
}

/// Splits on `|` not preceded by a backslash, then unescapes `\|` (as Plausible does).
fn split_values(rest: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                if let Some(last) = out.last_mut() {
                    last.push('|');
                }
            }
            '|' => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

pub fn parse_filters(s: &str) -> Result<Vec<Filter>, QueryError> {
    let err = |reason: String| QueryError::new("filters", reason);
    let mut out = Vec::new();
    for clause in s.split(';').map(str::trim).filter(|c| !c.is_empty()) {
        // The leftmost operator splits dimension from values; at one position the
        // two-character operators win over `~`.
        let (i, op) = ["!=", "==", "!~", "~"]
            .iter()
            .filter_map(|op| clause.find(op).map(|i| (i, *op)))
            .min_by_key(|(i, op)| (*i, usize::MAX - op.len()))
            .ok_or_else(|| {
                err(format!(
                    "{clause:?}: expected dimension==value, !=, ~ or !~"
                ))
            })?;
        let (dim, rest) = (&clause[..i], &clause[i + op.len()..]);
        let dimension = Dimension::parse(dim.trim())
            .ok_or_else(|| err(format!("unknown dimension {:?}", dim.trim())))?;
        if dimension.is_time() {
            return Err(err("time dimensions can't be filtered".into()));
        }
        let values = split_values(rest);
        if values.iter().any(String::is_empty) {
            return Err(err(format!("{clause:?}: empty value")));
        }
        // The same bounds as v2 filters.
        if values.len() > MAX_FILTER_VALUES {
            return Err(err(format!("{dim}: give 1 to {MAX_FILTER_VALUES} values")));
        }
        if values.iter().any(|v| v.chars().count() > 2000) {
            return Err(err("values are at most 2000 characters".into()));
        }
        let wild = values.iter().any(|v| v.contains('*'));
        let (op, values) = match (op, wild) {
            ("==", false) => (Op::Is, values),
            ("!=", false) => (Op::IsNot, values),
            ("==", true) => (
                Op::Matches,
                values.iter().map(|v| wildcard_regex(v)).collect(),
            ),
            ("!=", true) => (
                Op::MatchesNot,
                values.iter().map(|v| wildcard_regex(v)).collect(),
            ),
            ("~", _) => (Op::Contains, values),
            _ => (Op::ContainsNot, values),
        };
        if matches!(op, Op::Matches | Op::MatchesNot) {
            for v in &values {
                check_regex(v, "filters")?;
            }
        }
        out.push(Filter::Condition(Condition {
            op,
            dimension,
            values,
            case_sensitive: true,
        }));
        if out.len() > MAX_FILTER_CONDITIONS {
            return Err(err(format!("more than {MAX_FILTER_CONDITIONS} conditions")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_syntax() {
        let f =
            parse_filters("visit:browser==Chrome|Firefox;event:page==/blog/**;visit:country!=DE")
                .unwrap();
        assert_eq!(f.len(), 3);
        let Filter::Condition(c) = &f[1] else {
            panic!()
        };
        assert_eq!((c.op, c.values[0].as_str()), (Op::Matches, "^/blog/.*$"));
        assert!(regex::Regex::new(&c.values[0])
            .unwrap()
            .is_match("/blog/a/b"));
        let Filter::Condition(c) = &f[0] else {
            panic!()
        };
        assert_eq!(c.values, vec!["Chrome", "Firefox"]);
        assert!(parse_filters("visit:nope==x").is_err());
        let Filter::Condition(c) = &parse_filters("event:page==/a\\|b|/c").unwrap()[0] else {
            panic!()
        };
        assert_eq!(
            c.values,
            vec!["/a|b", "/c"],
            "escaped pipes are part of a value"
        );
        let Filter::Condition(c) = &parse_filters("event:props:q==x!=y").unwrap()[0] else {
            panic!()
        };
        assert_eq!(
            (c.op, c.dimension.clone(), c.values[0].as_str()),
            (Op::Is, Dimension::Prop("q".into()), "x!=y"),
            "the leftmost operator splits"
        );
        let many = format!("event:page=={}", vec!["a"; 101].join("|"));
        assert!(parse_filters(&many).is_err());
        let conditions = vec!["event:page==a"; 51].join(";");
        assert!(parse_filters(&conditions).is_err());
        assert!(parse_filters("garbage").is_err());
        let one_star = wildcard_regex("/a/*/c");
        assert!(regex::Regex::new(&one_star).unwrap().is_match("/a/b/c"));
        assert!(!regex::Regex::new(&one_star).unwrap().is_match("/a/b/x/c"));
    }
}
