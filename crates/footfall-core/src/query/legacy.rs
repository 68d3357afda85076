//! Plausible Stats API v1's legacy filter syntax:
//! `visit:browser==Chrome|Firefox;event:page==/blog/**;visit:country!=DE`.
//! `==` / `!=` with `|` for alternatives; `*` and `**` are page wildcards, turned into
//! anchored regexes; `~` / `!~` are v1's contains.

use super::model::*;
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

pub fn parse_filters(s: &str) -> Result<Vec<Filter>, QueryError> {
    let err = |reason: String| QueryError::new("filters", reason);
    let mut out = Vec::new();
    for clause in s.split(';').map(str::trim).filter(|c| !c.is_empty()) {
        let (dim, op, rest) = ["!=", "==", "!~", "~"]
            .iter()
            .find_map(|op| {
                clause
                    .find(op)
                    .map(|i| (&clause[..i], *op, &clause[i + op.len()..]))
            })
            .ok_or_else(|| {
                err(format!(
                    "{clause:?}: expected dimension==value, !=, ~ or !~"
                ))
            })?;
        let dimension = Dimension::parse(dim.trim())
            .ok_or_else(|| err(format!("unknown dimension {:?}", dim.trim())))?;
        if dimension.is_time() {
            return Err(err("time dimensions can't be filtered".into()));
        }
        let values: Vec<String> = rest.split('|').map(|v| v.replace("\\|", "|")).collect();
        if values.iter().any(String::is_empty) {
            return Err(err(format!("{clause:?}: empty value")));
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
        out.push(Filter::Condition(Condition {
            op,
            dimension,
            values,
            case_sensitive: true,
        }));
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
        assert!(parse_filters("garbage").is_err());
        let one_star = wildcard_regex("/a/*/c");
        assert!(regex::Regex::new(&one_star).unwrap().is_match("/a/b/c"));
        assert!(!regex::Regex::new(&one_star).unwrap().is_match("/a/b/x/c"));
    }
}
