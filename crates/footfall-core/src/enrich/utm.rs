//! UTM tags from the page URL's query string.

use crate::event::Utm;

pub fn from_query(query: &str) -> Utm {
    let mut utm = Utm::default();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match k.as_ref() {
            "utm_source" => &mut utm.source,
            "utm_medium" => &mut utm.medium,
            "utm_campaign" => &mut utm.campaign,
            "utm_content" => &mut utm.content,
            "utm_term" => &mut utm.term,
            _ => continue,
        };
        if slot.is_empty() {
            *slot = v.chars().take(200).collect();
        }
    }
    utm
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_tags() {
        let u = super::from_query("a=1&utm_source=news%20letter&utm_medium=email&utm_campaign=spring&utm_term=x&utm_content=y");
        assert_eq!(u.source, "news letter");
        assert_eq!(u.medium, "email");
        assert_eq!(u.campaign, "spring");
        assert_eq!((u.term.as_str(), u.content.as_str()), ("x", "y"));
        assert_eq!(super::from_query("").source, "");
    }
}
