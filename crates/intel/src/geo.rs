use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use maxminddb::{geoip2, LookupResult, PathElement, Reader};
use tapsentry_types::GeoInfo;

use crate::IntelError;

/// Optional MaxMind City (or Country) and ASN databases.
///
/// Each database is read whole into memory once ([`GeoIp::open`]), so a
/// lookup does no I/O, and a file replaced on disk later does not change
/// answers until a reload builds a new [`crate::IntelSnapshot`].
///
/// Cloning shares the databases (they are immutable once read), so a reload
/// can keep one that loaded before while replacing the other.
#[derive(Default, Clone)]
pub struct GeoIp {
    city: Option<Arc<Reader<Vec<u8>>>>,
    asn: Option<Arc<Reader<Vec<u8>>>>,
}

/// Larger database files are refused before they are read: each is read
/// whole into memory (GeoLite2-City is about 70 MB; the commercial City
/// database about 130 MB).
pub const MAX_GEOIP_BYTES: u64 = 1 << 30;

/// Which slot a database is opened for; used to check it is the right kind.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    City,
    Asn,
}

fn geo_err(path: &Path, reason: impl std::fmt::Display) -> IntelError {
    IntelError::GeoDb {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn open_db(path: &Path, kind: Kind) -> Result<Arc<Reader<Vec<u8>>>, IntelError> {
    let size = std::fs::metadata(path).map_err(|e| geo_err(path, e))?.len();
    if size > MAX_GEOIP_BYTES {
        return Err(geo_err(
            path,
            format!("{size} bytes is over the {MAX_GEOIP_BYTES}-byte limit for a GeoIP database"),
        ));
    }
    let reader = Reader::open_readfile(path).map_err(|e| geo_err(path, e))?;
    // A swapped configuration (ASN file given as the City database or the
    // reverse) would open fine and answer nothing forever: refuse it now.
    let db_type = reader.metadata().database_type.to_ascii_lowercase();
    let looks_asn = db_type.contains("asn") || db_type.contains("isp");
    let looks_geo = db_type.contains("city") || db_type.contains("country");
    match kind {
        Kind::City if looks_asn && !looks_geo => {
            return Err(geo_err(
                path,
                format!("it is a '{db_type}' database, expected City or Country"),
            ))
        }
        Kind::Asn if looks_geo && !looks_asn => {
            return Err(geo_err(
                path,
                format!("it is a '{db_type}' database, expected ASN"),
            ))
        }
        _ => {}
    }
    // A database that opens but cannot answer is as useless as a missing
    // one: probe it once now rather than fail silently on every lookup.
    for probe in [IpAddr::from([1, 1, 1, 1]), IpAddr::from([8, 8, 8, 8])] {
        let found = reader.lookup(probe).map_err(|e| geo_err(path, e))?;
        let decoded = match kind {
            Kind::City => found.decode::<geoip2::City<'_>>().map(|_| ()),
            Kind::Asn => found.decode::<geoip2::Asn<'_>>().map(|_| ()),
        };
        decoded.map_err(|e| geo_err(path, e))?;
    }
    Ok(Arc::new(reader))
}

/// Country and city of a City-database record. When the whole record does
/// not decode (one corrupt field, such as a broken latitude), the two
/// fields we need are fetched by path, so one bad value costs only itself.
fn city_fields(found: &LookupResult<'_, Vec<u8>>) -> (Option<String>, Option<String>) {
    match found.decode::<geoip2::City<'_>>() {
        Ok(Some(c)) => (
            // Where the address is located; failing that (anycast,
            // satellite), the country it is registered to.
            c.country
                .iso_code
                .or(c.registered_country.iso_code)
                .map(str::to_string),
            c.city.names.english.map(str::to_string),
        ),
        Ok(None) => (None, None),
        Err(_) => {
            let text = |path: &[PathElement<'_>]| -> Option<String> {
                found.decode_path::<String>(path).ok().flatten()
            };
            let country = text(&[PathElement::Key("country"), PathElement::Key("iso_code")])
                .or_else(|| {
                    text(&[
                        PathElement::Key("registered_country"),
                        PathElement::Key("iso_code"),
                    ])
                });
            let city = text(&[
                PathElement::Key("city"),
                PathElement::Key("names"),
                PathElement::Key("en"),
            ]);
            (country, city)
        }
    }
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("city", &self.city.is_some())
            .field("asn", &self.asn.is_some())
            .finish()
    }
}

impl GeoIp {
    /// Opens whichever databases are given. A file that is missing, not a
    /// MaxMind database, corrupt, or of the wrong kind is an error naming it.
    pub fn open(city: Option<&Path>, asn: Option<&Path>) -> Result<GeoIp, IntelError> {
        Ok(GeoIp {
            city: city.map(|p| open_db(p, Kind::City)).transpose()?,
            asn: asn.map(|p| open_db(p, Kind::Asn)).transpose()?,
        })
    }

    /// Opens each database given on its own, for a reload: one that fails
    /// keeps `previous`'s database of that kind (none at start), and its
    /// error is returned with the others', so a broken new ASN file does
    /// not cost a good new City file, or the old ASN data.
    pub fn reopen(
        previous: &GeoIp,
        city: Option<&Path>,
        asn: Option<&Path>,
    ) -> (GeoIp, Vec<IntelError>) {
        let mut errors = Vec::new();
        let mut one = |p: Option<&Path>, kind, old: &Option<Arc<Reader<Vec<u8>>>>| match p {
            None => None,
            Some(p) => match open_db(p, kind) {
                Ok(db) => Some(db),
                Err(e) => {
                    errors.push(e);
                    old.clone()
                }
            },
        };
        let city = one(city, Kind::City, &previous.city);
        let asn = one(asn, Kind::Asn, &previous.asn);
        (GeoIp { city, asn }, errors)
    }

    /// No databases: every lookup is `None`.
    pub fn none() -> GeoIp {
        GeoIp::default()
    }

    /// True when at least one database is open.
    pub fn is_configured(&self) -> bool {
        self.city.is_some() || self.asn.is_some()
    }

    /// Country, city and AS of `ip`. `None` when no database is configured
    /// or when the databases know nothing of the address (an alert then
    /// carries no `geo` rather than a bare `{ip}`). Errors inside a database (a
    /// corrupt record, an IPv6 address in an IPv4-only file) read as
    /// "unknown", never a panic.
    pub fn lookup(&self, ip: IpAddr) -> Option<GeoInfo> {
        if !self.is_configured() {
            return None;
        }
        // An IPv4-mapped IPv6 address is the IPv4 host: look that up, so
        // IPv4-only databases answer too.
        let key = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let mut info = GeoInfo {
            ip: Some(ip),
            ..GeoInfo::default()
        };
        if let Some(r) = &self.city {
            if let Ok(found) = r.lookup(key) {
                let (country, city) = city_fields(&found);
                info.country = country;
                info.city = city;
            }
        }
        if let Some(r) = &self.asn {
            if let Ok(Some(a)) = r.lookup(key).and_then(|l| l.decode::<geoip2::Asn<'_>>()) {
                info.asn = a.autonomous_system_number;
                info.as_org = a.autonomous_system_organization.map(str::to_string);
            }
        }
        (!info.is_unknown()).then_some(info)
    }
}
