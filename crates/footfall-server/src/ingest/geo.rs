//! Location: from a MaxMind-format database if one is configured, else from headers set by
//! a trusted edge (Cloudflare, Vercel, Netlify). Only country, region, city and the
//! coordinates are kept; the IP is not.

use axum::http::HeaderMap;
use footfall_core::GeoHint;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
}

/// Both layouts in use: MaxMind's GeoIP2/GeoLite2 (`country.iso_code`, `city.names.en`,
/// `location.latitude`) and ip-location-db's flat one (`country_code`, `city`, `latitude`).
#[derive(Deserialize, Default)]
struct Record {
    country: Option<Country>,
    city: Option<City>,
    location: Option<Location>,
    subdivisions: Option<Vec<Names>>,
    country_code: Option<String>,
    state1: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

#[derive(Deserialize)]
struct Country {
    iso_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum City {
    Flat(String),
    Named(Names),
}

#[derive(Deserialize)]
struct Names {
    names: Option<BTreeMap<String, String>>,
}

impl Names {
    fn english(&self) -> Option<String> {
        self.names.as_ref()?.get("en").cloned()
    }
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

impl GeoDb {
    pub fn open(path: &Path) -> Result<Self, String> {
        let reader = maxminddb::Reader::open_readfile(path)
            .map_err(|e| format!("cannot open GeoIP database {}: {e}", path.display()))?;
        Ok(GeoDb { reader })
    }

    pub fn lookup(&self, ip: IpAddr) -> GeoHint {
        let rec: Record = match self.reader.lookup(ip) {
            Ok(Some(r)) => r,
            _ => return GeoHint::default(),
        };
        let country = rec
            .country
            .and_then(|c| c.iso_code)
            .or(rec.country_code)
            .filter(|c| c.len() == 2 && c != "ZZ");
        GeoHint {
            country,
            region: rec
                .subdivisions
                .as_ref()
                .and_then(|s| s.first())
                .and_then(Names::english)
                .or(rec.state1)
                .filter(|r| !r.is_empty()),
            city: match rec.city {
                Some(City::Flat(s)) => Some(s),
                Some(City::Named(n)) => n.english(),
                None => None,
            }
            .filter(|c| !c.is_empty()),
            latitude: rec
                .location
                .as_ref()
                .and_then(|l| l.latitude)
                .or(rec.latitude),
            longitude: rec
                .location
                .as_ref()
                .and_then(|l| l.longitude)
                .or(rec.longitude),
        }
    }
}

fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    let v = headers.get(name)?.to_str().ok()?.trim();
    let decoded: String = url::form_urlencoded::parse(format!("x={v}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    (!decoded.is_empty() && decoded.len() <= 120 && decoded != "XX" && decoded != "T1")
        .then_some(decoded)
}

fn number(headers: &HeaderMap, name: &str) -> Option<f64> {
    text(headers, name)?
        .parse()
        .ok()
        .filter(|f: &f64| f.is_finite())
}

/// Geo headers set by edge networks. Only called for requests from trusted proxies.
pub fn from_edge_headers(headers: &HeaderMap) -> GeoHint {
    let first = |names: &[&str]| names.iter().find_map(|n| text(headers, n));
    let first_num = |names: &[&str]| names.iter().find_map(|n| number(headers, n));
    GeoHint {
        country: first(&["cf-ipcountry", "x-vercel-ip-country", "x-country"])
            .map(|c| c.to_ascii_uppercase())
            .filter(|c| c.len() == 2),
        region: first(&["cf-region", "x-vercel-ip-country-region"]),
        city: first(&["cf-ipcity", "x-vercel-ip-city"]),
        latitude: first_num(&["cf-iplatitude", "x-vercel-ip-latitude"])
            .filter(|v| (-90.0..=90.0).contains(v)),
        longitude: first_num(&["cf-iplongitude", "x-vercel-ip-longitude"])
            .filter(|v| (-180.0..=180.0).contains(v)),
    }
}
