//! The content catalogue (the seed's posts and pages): a site's known pages — path, title,
//! type, published — set by its owner. The live stats count published pages by type
//! (`publishedPosts`, `publishedPages`), prefer catalogue titles and types to what page
//! views reported, and list published pages nobody has viewed yet.
//!
//! Read from the JSON the API takes, or from a sitemap, an RSS feed or an Atom feed. XML is
//! read as plain UTF-8 without a DTD: a document type declaration is refused, so no entity
//! can be defined, let alone expanded (billion laughs, external entities); only XML's five
//! predefined entities and character references are read.

use crate::live::LiveStats;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Most entries one catalogue holds (a sitemap file's own limit).
pub const MAX_ENTRIES: usize = 50_000;
/// Largest catalogue document read, JSON or XML.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
const MAX_PATH: usize = 2000;
const MAX_TITLE: usize = 300;
const MAX_TYPE: usize = 32;
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("the catalogue is larger than {MAX_BYTES} bytes")]
    TooLarge,
    #[error("more than {MAX_ENTRIES} entries")]
    TooMany,
    #[error("the document is not UTF-8 (catalogues are read as UTF-8 only)")]
    Encoding,
    #[error("not a catalogue: expected a JSON array of entries, a sitemap (<urlset>), an RSS feed (<rss>) or an Atom feed (<feed>)")]
    Format,
    #[error("{0}")]
    Json(String),
    #[error("XML: {0}")]
    Xml(String),
    #[error("{field}: {reason}")]
    Entry { field: String, reason: String },
}

fn entry_err(field: impl Into<String>, reason: impl Into<String>) -> CatalogueError {
    CatalogueError::Entry {
        field: field.into(),
        reason: reason.into(),
    }
}

/// One known page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `post`, `page`, or the owner's own word.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "yes")]
    pub published: bool,
}

fn yes() -> bool {
    true
}

/// A site's catalogue: entries by path, and how many times it was set (which makes the
/// live stats' version grow when it changes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalogue {
    pub revision: u64,
    entries: Vec<Entry>,
    by_path: HashMap<String, usize>,
    /// Published posts and pages, counted once: every live snapshot reports them.
    counts: (u64, u64),
}

impl Catalogue {
    /// From checked entries (paths unique).
    pub fn new(revision: u64, mut entries: Vec<Entry>) -> Catalogue {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let by_path = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.path.clone(), i))
            .collect();
        let count = |k: &str| {
            entries
                .iter()
                .filter(|e| e.published && e.kind == k)
                .count() as u64
        };
        let counts = (count("post"), count("page"));
        Catalogue {
            revision,
            entries,
            by_path,
            counts,
        }
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.by_path.get(path).map(|i| &self.entries[*i])
    }

    /// The live stats with the catalogue applied: `publishedPosts` / `publishedPages`,
    /// catalogue titles and types first, and — unless `limit` cut the list short — the
    /// published pages without views, with 0 views, after the viewed ones. The version
    /// grows by the catalogue's revision, so a catalogue change is a newer snapshot.
    pub fn apply(&self, stats: &mut LiveStats, limit: Option<usize>) {
        (stats.published_posts, stats.published_pages) = self.counts;
        stats.version += self.revision;
        for p in &mut stats.page_stats {
            if let Some(e) = self.get(&p.path) {
                if let Some(t) = &e.title {
                    p.title = t.clone();
                }
                p.page_type = e.kind.clone();
            }
        }
        let complete = limit.is_none_or(|l| stats.page_stats.len() < l);
        if !complete {
            return;
        }
        let viewed: HashSet<&str> = stats.page_stats.iter().map(|p| p.path.as_str()).collect();
        let unseen: Vec<crate::live::snapshot::PageStat> = self
            .entries
            .iter()
            .filter(|e| e.published && !viewed.contains(e.path.as_str()))
            .take(limit.map_or(usize::MAX, |l| l - stats.page_stats.len()))
            .map(|e| crate::live::snapshot::PageStat {
                path: e.path.clone(),
                title: e.title.clone().unwrap_or_else(|| e.path.clone()),
                page_type: e.kind.clone(),
                views: 0,
                avg_time_on_page_ms: None,
            })
            .collect();
        stats.page_stats.extend(unseen);
    }
}

/// A path as page views store it: absolute, percent-encoded, without query or fragment.
fn normal_path(raw: &str, field: &str) -> Result<String, CatalogueError> {
    if !raw.starts_with('/') || raw.len() > MAX_PATH || raw.chars().any(char::is_control) {
        return Err(entry_err(
            field,
            format!(
                "a path starts with / and is at most {MAX_PATH} bytes, without control characters"
            ),
        ));
    }
    if raw.contains(['?', '#']) {
        return Err(entry_err(field, "a path has no query or fragment"));
    }
    let url = url::Url::parse(&format!("https://catalogue.invalid{raw}"))
        .map_err(|e| entry_err(field, e.to_string()))?;
    Ok(url.path().to_string())
}

fn check_title(t: &str, field: &str) -> Result<String, CatalogueError> {
    let t = t.trim();
    if t.chars().count() > MAX_TITLE || t.chars().any(char::is_control) {
        return Err(entry_err(
            field,
            format!("a title is at most {MAX_TITLE} characters, without control characters"),
        ));
    }
    Ok(t.to_string())
}

fn check_entry(mut e: Entry, i: usize) -> Result<Entry, CatalogueError> {
    e.path = normal_path(&e.path, &format!("[{i}].path"))?;
    e.title = match e.title {
        Some(t) => Some(check_title(&t, &format!("[{i}].title"))?).filter(|t| !t.is_empty()),
        None => None,
    };
    let k = &e.kind;
    if k.is_empty()
        || k.len() > MAX_TYPE
        || !k
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(entry_err(
            format!("[{i}].type"),
            format!("a type is post, page or your own word: 1 to {MAX_TYPE} of a-z, 0-9, - and _"),
        ));
    }
    Ok(e)
}

/// The API's JSON: `[{"path", "title"?, "type", "published"?}, …]`, paths unique.
pub fn from_json(bytes: &[u8]) -> Result<Vec<Entry>, CatalogueError> {
    if bytes.len() > MAX_BYTES {
        return Err(CatalogueError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| CatalogueError::Encoding)?;
    // Counted before the entries are read, so a huge array costs no more than its text.
    let raw: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| CatalogueError::Json(e.to_string()))?;
    if raw.len() > MAX_ENTRIES {
        return Err(CatalogueError::TooMany);
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, v) in raw.into_iter().enumerate() {
        let e: Entry = serde_json::from_value(v)
            .map_err(|err| entry_err(format!("[{i}]"), err.to_string()))?;
        let e = check_entry(e, i)?;
        if !seen.insert(e.path.clone()) {
            return Err(entry_err(
                format!("[{i}].path"),
                format!("{} is listed twice", e.path),
            ));
        }
        out.push(e);
    }
    Ok(out)
}

/// Entries read from a document, and how many were left out (on other hosts, or repeats).
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub entries: Vec<Entry>,
    pub skipped: usize,
}

/// A catalogue file: JSON, a sitemap, an RSS or an Atom feed (told apart by content).
/// `host`: the site's domain; URLs on it or its subdomains are kept.
pub fn import(bytes: &[u8], host: &str) -> Result<Imported, CatalogueError> {
    if bytes.len() > MAX_BYTES {
        return Err(CatalogueError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| CatalogueError::Encoding)?;
    // UTF-16 without a byte order mark reads as UTF-8 full of NULs, which no text has.
    if text.contains('\0') {
        return Err(CatalogueError::Encoding);
    }
    let body = text.trim_start_matches('\u{feff}').trim_start();
    match body.as_bytes().first() {
        Some(b'[') => Ok(Imported {
            entries: from_json(body.as_bytes())?,
            skipped: 0,
        }),
        Some(b'<') => from_xml(body, host),
        _ => Err(CatalogueError::Format),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Sitemap,
    Rss,
    Atom,
}

/// What one `<url>`, `<item>` or `<entry>` said.
#[derive(Default)]
struct Item {
    url: Option<String>,
    title: Option<String>,
}

fn xml_err(e: impl std::fmt::Display) -> CatalogueError {
    CatalogueError::Xml(e.to_string())
}

fn from_xml(text: &str, host: &str) -> Result<Imported, CatalogueError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<String> = Vec::new();
    let mut kind: Option<Kind> = None;
    let mut item: Option<Item> = None;
    // The text of the element being read inside an item (loc, link, title).
    let mut field: Option<(String, String)> = None;
    let mut items: Vec<Item> = Vec::new();
    loop {
        let ev = reader.read_event().map_err(xml_err)?;
        match ev {
            Event::DocType(_) => {
                return Err(CatalogueError::Xml(
                    "a document type declaration (DTD) is not accepted: entities are never defined or expanded".into(),
                ))
            }
            Event::Decl(d) => {
                if let Some(enc) = d.encoding() {
                    let enc = enc.map_err(xml_err)?;
                    if !enc.eq_ignore_ascii_case(b"utf-8") {
                        return Err(CatalogueError::Encoding);
                    }
                }
            }
            Event::Start(ref s) | Event::Empty(ref s) => {
                let empty = matches!(ev, Event::Empty(_));
                // Other vocabularies' elements (itunes:title, xhtml:link, media:…) are not
                // the feed's own, whatever their local name.
                let foreign = s.name().prefix().is_some();
                let name = String::from_utf8_lossy(s.local_name().as_ref()).to_string();
                if stack.is_empty() && kind.is_some() {
                    return Err(CatalogueError::Xml(
                        "a second root element after the first".into(),
                    ));
                }
                if stack.is_empty() {
                    kind = Some(match name.as_str() {
                        "urlset" => Kind::Sitemap,
                        "rss" => Kind::Rss,
                        "feed" => Kind::Atom,
                        "sitemapindex" => {
                            return Err(CatalogueError::Xml(
                                "a sitemap index lists other sitemaps: import each of them".into(),
                            ))
                        }
                        _ => return Err(CatalogueError::Format),
                    });
                }
                let parent = stack.last().map(String::as_str);
                match (kind, parent, name.as_str()) {
                    _ if foreign => {}
                    (Some(Kind::Sitemap), Some("urlset"), "url")
                    | (Some(Kind::Rss), Some("channel"), "item")
                    | (Some(Kind::Atom), Some("feed"), "entry") => {
                        if items.len() >= MAX_ENTRIES {
                            return Err(CatalogueError::TooMany);
                        }
                        item = Some(Item::default());
                        field = None;
                    }
                    (Some(Kind::Atom), Some("entry"), "link") => {
                        // The entry's own page: rel="alternate", or no rel.
                        let mut rel = None;
                        let mut href = None;
                        for a in s.attributes() {
                            let a = a.map_err(xml_err)?;
                            let v = a.unescape_value().map_err(xml_err)?.to_string();
                            match a.key.local_name().as_ref() {
                                b"rel" => rel = Some(v),
                                b"href" => href = Some(v),
                                _ => {}
                            }
                        }
                        if let (Some(it), Some(h)) = (item.as_mut(), href) {
                            if rel.as_deref().is_none_or(|r| r == "alternate") && it.url.is_none() {
                                it.url = Some(h);
                            }
                        }
                    }
                    (_, Some("url" | "item" | "entry"), "loc" | "link" | "title")
                        if item.is_some() && !empty =>
                    {
                        field = Some((name.clone(), String::new()));
                    }
                    _ => {}
                }
                if !empty {
                    stack.push(name);
                    if stack.len() > MAX_DEPTH {
                        return Err(CatalogueError::Xml(format!(
                            "elements nest deeper than {MAX_DEPTH} levels"
                        )));
                    }
                }
            }
            Event::Text(t) => {
                if let Some((_, buf)) = field.as_mut() {
                    buf.push_str(&t.decode().map_err(xml_err)?);
                }
            }
            Event::CData(t) => {
                if let Some((_, buf)) = field.as_mut() {
                    buf.push_str(&t.decode().map_err(xml_err)?);
                }
            }
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(xml_err)? {
                    Some(c) => c,
                    None => match r.as_ref() {
                        b"lt" => '<',
                        b"gt" => '>',
                        b"amp" => '&',
                        b"apos" => '\'',
                        b"quot" => '"',
                        other => {
                            return Err(CatalogueError::Xml(format!(
                                "unknown entity &{};: only XML's five and character references are read",
                                String::from_utf8_lossy(other)
                            )))
                        }
                    },
                };
                if let Some((_, buf)) = field.as_mut() {
                    buf.push(c);
                }
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                if let Some((f, buf)) = field.take_if(|(f, _)| *f == name) {
                    if let Some(it) = item.as_mut() {
                        let v = buf.trim().to_string();
                        match f.as_str() {
                            "title" => it.title = Some(v),
                            _ if it.url.is_none() => it.url = Some(v),
                            _ => {}
                        }
                    }
                }
                if matches!(name.as_str(), "url" | "item" | "entry")
                    && matches!(
                        (kind, stack.last().map(String::as_str)),
                        (Some(Kind::Sitemap), Some("urlset"))
                            | (Some(Kind::Rss), Some("channel"))
                            | (Some(Kind::Atom), Some("feed"))
                    )
                {
                    items.extend(item.take());
                    field = None;
                }
            }
            Event::Eof => {
                // quick-xml stops at the end of input whatever is still open: a document
                // cut short must not replace a catalogue with its first part.
                if let Some(open) = stack.last() {
                    return Err(CatalogueError::Xml(format!(
                        "the document ends inside <{open}>: it is cut short"
                    )));
                }
                break;
            }
            _ => {}
        }
    }
    let Some(kind) = kind else {
        return Err(CatalogueError::Format);
    };
    let type_ = if kind == Kind::Sitemap {
        "page"
    } else {
        "post"
    };
    let host = host.to_ascii_lowercase();
    let mut seen = HashSet::new();
    let mut out = Imported {
        entries: Vec::new(),
        skipped: 0,
    };
    for (i, it) in items.into_iter().enumerate() {
        let Some(raw) = it.url else {
            out.skipped += 1;
            continue;
        };
        let url = url::Url::parse(&raw).map_err(|e| {
            entry_err(
                format!("entry {}", i + 1),
                format!("{raw:?} is not an absolute URL ({e})"),
            )
        })?;
        let on_site = url.host_str().is_some_and(|h| {
            let h = h.to_ascii_lowercase();
            h == host || h.ends_with(&format!(".{host}"))
        });
        if !on_site || !matches!(url.scheme(), "http" | "https") {
            out.skipped += 1;
            continue;
        }
        let path = url.path().to_string();
        if !seen.insert(path.clone()) {
            out.skipped += 1;
            continue;
        }
        let e = Entry {
            path,
            title: it.title,
            kind: type_.into(),
            published: true,
        };
        out.entries.push(check_entry(e, i)?);
    }
    // Every URL elsewhere: the site is probably registered under another name (www.).
    if out.entries.is_empty() && out.skipped > 0 {
        return Err(CatalogueError::Xml(format!(
            "none of its {} URLs is on {host} or its subdomains; nothing was changed",
            out.skipped
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_entries_are_checked() {
        let ok = from_json(
            br#"[{"path": "/blog/caf\u00e9", "title": " Caf\u00e9 ", "type": "post"},
            {"path": "/about", "type": "page", "published": false}]"#,
        )
        .unwrap();
        assert_eq!(
            ok[0].path, "/blog/caf%C3%A9",
            "paths as page views store them"
        );
        assert_eq!(ok[0].title.as_deref(), Some("Café"));
        assert!(ok[0].published && !ok[1].published);
        for (bad, needle) in [
            (r#"[{"path": "blog", "type": "post"}]"#, "[0].path"),
            (r#"[{"path": "/a?x=1", "type": "post"}]"#, "query"),
            (r#"[{"path": "/a", "type": "Post"}]"#, "[0].type"),
            (r#"[{"path": "/a", "type": ""}]"#, "[0].type"),
            (
                r#"[{"path": "/a", "type": "post", "extra": 1}]"#,
                "unknown field",
            ),
            (
                r#"[{"path": "/a", "type": "post"}, {"path": "/a", "type": "page"}]"#,
                "twice",
            ),
            (
                r#"[{"path": "/a", "type": "post", "title": "a\u0000b"}]"#,
                "[0].title",
            ),
            (r#"{"path": "/a"}"#, "invalid type"),
            ("[", "EOF"),
        ] {
            let e = from_json(bad.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
        let many = format!(
            "[{}]",
            vec![r#"{"path": "/", "type": "page"}"#; MAX_ENTRIES + 1].join(",")
        );
        assert_eq!(from_json(many.as_bytes()), Err(CatalogueError::TooMany));
        assert_eq!(
            from_json(&[0xff, 0xfe, b'[', b']']),
            Err(CatalogueError::Encoding)
        );
    }

    #[test]
    fn sitemaps_and_feeds_are_read() {
        let sitemap = r#"<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>https://example.com/</loc><lastmod>2026-01-01</lastmod></url>
  <url><loc>https://example.com/about?ref=x</loc></url>
  <url><loc>https://blog.example.com/caf&#233;</loc></url>
  <url><loc>https://other.org/x</loc></url>
  <url><loc>https://example.com/</loc></url>
</urlset>"#;
        let got = import(sitemap.as_bytes(), "example.com").unwrap();
        let paths: Vec<(&str, &str)> = got
            .entries
            .iter()
            .map(|e| (e.path.as_str(), e.kind.as_str()))
            .collect();
        assert_eq!(
            paths,
            [("/", "page"), ("/about", "page"), ("/caf%C3%A9", "page")]
        );
        assert_eq!(got.skipped, 2, "another host and a repeat");

        let rss = r#"<rss version="2.0"><channel><title>Blog</title>
  <item><title>Tom &amp; Jerry</title><link>https://example.com/blog/tom</link></item>
  <item><title><![CDATA[A <b>bold</b> post]]></title><link>https://example.com/blog/bold</link></item>
</channel></rss>"#;
        let got = import(rss.as_bytes(), "example.com").unwrap().entries;
        let podcast = r#"<rss xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>
  <item><title>Episode 1</title><itunes:title>Not this</itunes:title><title/>
  <link>https://example.com/ep/1</link></item></channel></rss>"#;
        let ep = import(podcast.as_bytes(), "example.com").unwrap().entries;
        assert_eq!(
            ep[0].title.as_deref(),
            Some("Episode 1"),
            "other vocabularies' titles are not the item's"
        );
        assert_eq!(
            got[0],
            Entry {
                path: "/blog/tom".into(),
                title: Some("Tom & Jerry".into()),
                kind: "post".into(),
                published: true
            }
        );
        assert_eq!(got[1].title.as_deref(), Some("A <b>bold</b> post"));

        let atom = r#"<feed xmlns="http://www.w3.org/2005/Atom"><title>Blog</title>
  <entry><title>First</title><link rel="edit" href="https://example.com/edit/1"/><link href="https://example.com/posts/1"/></entry>
  <entry><title>Second</title><link rel="alternate" href="https://example.com/posts/2"/></entry>
</feed>"#;
        let got = import(atom.as_bytes(), "example.com").unwrap().entries;
        let paths: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/posts/1", "/posts/2"]);
        assert_eq!(got[1].title.as_deref(), Some("Second"));
        // JSON through the same door.
        let got = import(br#" [{"path": "/x", "type": "guide"}]"#, "example.com").unwrap();
        assert_eq!(got.entries[0].kind, "guide");
    }

    #[test]
    fn hostile_documents_are_refused() {
        let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<urlset><url><loc>https://example.com/&lol2;</loc></url></urlset>"#;
        assert!(
            matches!(import(laughs.as_bytes(), "example.com"), Err(CatalogueError::Xml(e)) if e.contains("DTD"))
        );
        let external = r#"<urlset><url><loc>https://example.com/&xxe;</loc></url></urlset>"#;
        assert!(
            matches!(import(external.as_bytes(), "example.com"), Err(CatalogueError::Xml(e)) if e.contains("unknown entity"))
        );
        let latin1 = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><urlset></urlset>";
        assert_eq!(import(latin1, "example.com"), Err(CatalogueError::Encoding));
        let utf16: Vec<u8> = "<urlset></urlset>"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(import(&utf16, "example.com"), Err(CatalogueError::Encoding));
        let deep = format!(
            "<urlset>{}{}</urlset>",
            "<a>".repeat(100),
            "</a>".repeat(100)
        );
        assert!(
            matches!(import(deep.as_bytes(), "example.com"), Err(CatalogueError::Xml(e)) if e.contains("deeper"))
        );
        assert!(matches!(
            import(b"<urlset><url><loc>x</url></urlset>", "example.com"),
            Err(CatalogueError::Xml(_))
        ));
        assert!(
            matches!(import(b"<sitemapindex/>", "example.com"), Err(CatalogueError::Xml(e)) if e.contains("index"))
        );
        assert_eq!(
            import(b"<html></html>", "example.com"),
            Err(CatalogueError::Format)
        );
        assert_eq!(import(b"hello", "example.com"), Err(CatalogueError::Format));
        let cut = "<urlset><url><loc>https://example.com/a</loc></url><url><loc>https://exa";
        assert!(
            matches!(import(cut.as_bytes(), "example.com"), Err(CatalogueError::Xml(e)) if e.contains("cut short"))
        );
        let two = "<urlset></urlset><rss><channel></channel></rss>";
        assert!(
            matches!(import(two.as_bytes(), "example.com"), Err(CatalogueError::Xml(e)) if e.contains("second root"))
        );
        let elsewhere = "<urlset><url><loc>https://example.org/a</loc></url></urlset>";
        assert!(
            matches!(import(elsewhere.as_bytes(), "example.com"), Err(CatalogueError::Xml(e)) if e.contains("none of its 1"))
        );
        let huge = vec![b' '; MAX_BYTES + 1];
        assert_eq!(import(&huge, "example.com"), Err(CatalogueError::TooLarge));
        let many = format!(
            "<urlset>{}</urlset>",
            "<url><loc>https://example.com/</loc></url>".repeat(MAX_ENTRIES + 1)
        );
        assert_eq!(
            import(many.as_bytes(), "example.com"),
            Err(CatalogueError::TooMany)
        );
    }

    #[test]
    fn the_live_stats_read_the_catalogue() {
        use crate::live::{ActiveVisitors, LiveStats};
        let site = crate::SiteId::parse("e.com").unwrap();
        let mut stats = LiveStats::build(&site, 7, None, &ActiveVisitors::new(60_000), None);
        stats.page_stats.push(crate::live::snapshot::PageStat {
            path: "/a".into(),
            title: "from the page".into(),
            page_type: "other".into(),
            views: 3,
            avg_time_on_page_ms: None,
        });
        let cat = Catalogue::new(
            2,
            from_json(br#"[{"path": "/a", "title": "A", "type": "post"}, {"path": "/b", "type": "post"},
                {"path": "/c", "title": "C", "type": "page"}, {"path": "/d", "type": "page", "published": false}]"#)
            .unwrap(),
        );
        let mut full = stats.clone();
        cat.apply(&mut full, None);
        assert_eq!(
            (full.published_posts, full.published_pages, full.version),
            (2, 1, 9)
        );
        let rows: Vec<(&str, &str, &str, u64)> = full
            .page_stats
            .iter()
            .map(|p| {
                (
                    p.path.as_str(),
                    p.title.as_str(),
                    p.page_type.as_str(),
                    p.views,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("/a", "A", "post", 3),
                ("/b", "/b", "post", 0),
                ("/c", "C", "page", 0)
            ]
        );
        // A list cut at its limit gets no unviewed pages.
        let mut top = stats.clone();
        cat.apply(&mut top, Some(1));
        assert_eq!(top.page_stats.len(), 1);
        let mut two = stats;
        cat.apply(&mut two, Some(2));
        assert_eq!(two.page_stats.len(), 2);
    }
}
