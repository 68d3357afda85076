//! ClickHouse's HTTP interface: statements as request bodies, rows back as TabSeparated,
//! rows in as JSONEachRow. 18.16 has no bound parameters over HTTP, so values are written
//! into the statement as literals by [`render`], which escapes every byte that could end
//! one.

use crate::StoreError;
use footfall_core::query::plan::Param;
use std::time::Duration;

/// One server and database; cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::blocking::Client,
    /// The server's address with the settings every request carries.
    endpoint: String,
}

impl Http {
    pub fn new(url: &str, database: &str) -> Result<Http, StoreError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| StoreError::Backend(format!("ClickHouse URL {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(StoreError::Backend(format!(
                "ClickHouse URL {url:?}: use http:// or https:// (the HTTP interface)"
            )));
        }
        if !valid_identifier(database) {
            return Err(StoreError::Backend(format!(
                "ClickHouse database name {database:?}: use letters, digits and _"
            )));
        }
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(300))
            .build()
            .map_err(|e| StoreError::Backend(format!("HTTP client: {e}")))?;
        let mut endpoint = parsed;
        endpoint
            .query_pairs_mut()
            // Plain JOIN means ALL JOIN, as in standard SQL (18.16 wants it said).
            .append_pair("join_default_strictness", "ALL")
            // The server gives up before this client does (300 s): a statement the
            // client stopped waiting for must not land later, beside its retry.
            .append_pair("max_execution_time", "240");
        Ok(Http {
            client,
            endpoint: endpoint.to_string(),
        })
        .map(|h: Http| h.in_database(database))
    }

    fn in_database(mut self, database: &str) -> Http {
        self.endpoint.push_str("&database=");
        self.endpoint.push_str(database);
        self
    }

    /// The same server without a database selected (to create it).
    pub fn server(&self) -> Http {
        let end = self
            .endpoint
            .find("&database=")
            .unwrap_or(self.endpoint.len());
        Http {
            client: self.client.clone(),
            endpoint: self.endpoint[..end].to_string(),
        }
    }

    fn post(&self, query_param: Option<&str>, body: Vec<u8>) -> Result<String, StoreError> {
        let mut req = self.client.post(&self.endpoint);
        if let Some(q) = query_param {
            req = req.query(&[("query", q)]);
        }
        let resp = req
            .body(body)
            .send()
            .map_err(|e| StoreError::Unavailable(format!("ClickHouse at {}: {e}", self.host())))?;
        let status = resp.status();
        let text = resp
            .text()
            .map_err(|e| StoreError::Unavailable(format!("ClickHouse reply: {e}")))?;
        if !status.is_success() {
            return Err(StoreError::Backend(format!(
                "ClickHouse refused a statement ({status}): {}",
                text.trim()
            )));
        }
        Ok(text)
    }

    fn host(&self) -> String {
        url::Url::parse(&self.endpoint)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| format!("{h}:{}", u.port().unwrap_or(8123)))
            })
            .unwrap_or_default()
    }

    /// Runs a statement that returns nothing of interest.
    pub fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.post(None, sql.as_bytes().to_vec()).map(drop)
    }

    /// Runs a query; each row as its fields (None for NULL).
    pub fn rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, StoreError> {
        let text = self.post(None, format!("{sql} FORMAT TabSeparated").into_bytes())?;
        Ok(text
            .lines()
            .map(|line| line.split('\t').map(unescape).collect())
            .collect())
    }

    /// Runs a query; each row as a JSON object (64-bit numbers may come as strings).
    pub fn json_rows(&self, sql: &str) -> Result<Vec<serde_json::Value>, StoreError> {
        let text = self.post(None, format!("{sql} FORMAT JSONEachRow").into_bytes())?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .map_err(|e| StoreError::Corrupt(format!("ClickHouse row {l:?}: {e}")))
            })
            .collect()
    }

    /// The first field of the first row as a number (0 if there is none).
    pub fn number(&self, sql: &str) -> Result<u64, StoreError> {
        let rows = self.rows(sql)?;
        let field = rows
            .first()
            .and_then(|r| r.first())
            .cloned()
            .flatten()
            .unwrap_or_else(|| "0".into());
        field
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("ClickHouse answered {field:?} for a count")))
    }

    /// Inserts rows given as JSON objects, one per line. ClickHouse parses them as they
    /// arrive; the insert is one statement, whose rows become visible when it succeeds.
    pub fn insert_json(&self, table: &str, body: Vec<u8>) -> Result<(), StoreError> {
        if body.is_empty() {
            return Ok(());
        }
        self.post(
            Some(&format!("INSERT INTO {table} FORMAT JSONEachRow")),
            body,
        )
        .map(drop)
    }
}

pub(crate) fn valid_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// A TabSeparated field: `\N` is NULL; backslash escapes as ClickHouse writes them.
fn unescape(field: &str) -> Option<String> {
    if field == "\\N" {
        return None;
    }
    if !field.contains('\\') {
        return Some(field.to_string());
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}

/// A string as a ClickHouse literal: quoted, with backslash and quote escaped (inside a
/// literal only these end it or start an escape).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The statement with each `?` placeholder (outside quoted text) replaced by its value.
pub(crate) fn render(sql: &str, params: &[Param]) -> Result<String, StoreError> {
    let mut out = String::with_capacity(sql.len() + params.len() * 8);
    let mut values = params.iter();
    let mut in_quote = false;
    let mut escaped = false;
    for c in sql.chars() {
        if in_quote {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '\'') => in_quote = false,
                _ => {}
            }
            continue;
        }
        match c {
            '\'' => {
                in_quote = true;
                out.push(c);
            }
            '?' => match values.next() {
                Some(Param::Text(s)) => out.push_str(&quote(s)),
                Some(Param::Int(i)) => out.push_str(&i.to_string()),
                None => {
                    return Err(StoreError::Corrupt(
                        "a planned statement has more placeholders than values".into(),
                    ))
                }
            },
            c => out.push(c),
        }
    }
    if values.next().is_some() {
        return Err(StoreError::Corrupt(
            "a planned statement has more values than placeholders".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_cannot_end_early() {
        let sql = render(
            "SELECT ? = 'it''s ?', ?",
            &[Param::Text("a'b\\' OR 1 --".into()), Param::Int(-3)],
        );
        // '' inside a literal is not how this renderer's input is written; the point is
        // that the value stays one literal.
        assert_eq!(
            sql.unwrap(),
            "SELECT 'a\\'b\\\\\\' OR 1 --' = 'it''s ?', -3"
        );
        assert!(render("SELECT ?", &[]).is_err());
        assert!(render("SELECT 1", &[Param::Int(1)]).is_err());
    }

    #[test]
    fn fields_unescape() {
        assert_eq!(unescape("\\N"), None);
        assert_eq!(unescape("a\\tb\\\\c\\nd").as_deref(), Some("a\tb\\c\nd"));
        assert_eq!(unescape("plain").as_deref(), Some("plain"));
    }
}
