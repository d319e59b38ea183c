//! Where countries are, for judging whether a trip between two sign-ins
//! could be flown: each country's centre (of its largest land polygon),
//! how far its main land reaches from that centre, and the countries
//! near it: its main land (polygons at least a quarter of its largest, not
//! far territories) borders theirs or lies within `NEAR_KM` of it across
//! a strait. Read from `data/countries.csv`, which [`build`] derives from
//! Natural Earth's 1:50m country boundaries (public domain; the
//! `world-atlas` npm package's TopoJSON) and ISO 3166 codes
//! (`i18n-iso-countries`); a test derives it again from the installed
//! packages and compares.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use crate::Country;

const COUNTRIES: &str = include_str!("../data/countries.csv");

/// Mean Earth radius, km.
const EARTH_KM: f64 = 6_371.0;
/// Kilometres in a degree of latitude.
const KM_PER_DEGREE: f64 = EARTH_KM * std::f64::consts::PI / 180.0;

/// One country's place.
#[derive(Clone, Debug, PartialEq)]
pub struct CountryPlace {
    pub country: Country,
    /// Degrees.
    pub lat: f64,
    pub lon: f64,
    /// How far its main land reaches from the centre, km: every place of
    /// it is at most this far.
    pub radius_km: f64,
    pub near: Vec<Country>,
}

/// Every country the data places, by code.
pub fn countries() -> &'static BTreeMap<Country, CountryPlace> {
    static PARSED: OnceLock<BTreeMap<Country, CountryPlace>> = OnceLock::new();
    PARSED.get_or_init(|| parse(COUNTRIES))
}

fn parse(text: &str) -> BTreeMap<Country, CountryPlace> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("code,"))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let [code, lat, lon, radius, near] = f.as_slice() else {
                return None;
            };
            let country = Country::parse(code)?;
            Some((
                country,
                CountryPlace {
                    country,
                    lat: lat.parse().ok()?,
                    lon: lon.parse().ok()?,
                    radius_km: radius.parse().ok()?,
                    near: near.split(' ').filter_map(Country::parse).collect(),
                },
            ))
        })
        .collect()
}

/// The country's place, when the data has it (not for regions such as
/// `EU`, nor for the smallest territories).
pub fn place(country: Country) -> Option<&'static CountryPlace> {
    countries().get(&country)
}

/// Whether two countries' main lands border or face each other across a
/// strait (symmetric).
pub fn near(a: Country, b: Country) -> bool {
    place(a).is_some_and(|p| p.near.contains(&b))
}

/// Great-circle distance between two countries' centres, km.
pub fn distance_km(a: &CountryPlace, b: &CountryPlace) -> f64 {
    haversine_km(a.lat, a.lon, b.lat, b.lon)
}

fn haversine_km(lat_a: f64, lon_a: f64, lat_b: f64, lon_b: f64) -> f64 {
    let (la, lb) = (lat_a.to_radians(), lat_b.to_radians());
    let dlat = lb - la;
    let dlon = (lon_b - lon_a).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la.cos() * lb.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_KM * h.sqrt().min(1.0).asin()
}

/// Main lands this close are near each other (a strait, a narrow sea).
pub const NEAR_KM: f64 = 100.0;

/// Why the sources do not make a table.
#[derive(Debug, PartialEq, Eq)]
pub struct GeoError(pub &'static str);

impl std::fmt::Display for GeoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// `data/countries.csv` from a TopoJSON of country boundaries (`world-atlas`'
/// `countries-50m.json`: geometries keyed by ISO 3166-1 numeric code) and
/// the codes (`i18n-iso-countries`' `codes.json`: [alpha-2, alpha-3,
/// numeric, …]). A country's centre is that of its largest polygon (the
/// mainland, not its far territories), on a plane scaled by the polygon's
/// latitude; its size counts all its polygons; two countries are near when
/// main polygons of theirs share an arc or come within `NEAR_KM`.
pub fn build(topojson: &str, codes: &str) -> Result<String, GeoError> {
    use serde_json::Value;
    let topo: Value =
        serde_json::from_str(topojson).map_err(|_| GeoError("topojson is not JSON"))?;
    let codes: Value = serde_json::from_str(codes).map_err(|_| GeoError("codes are not JSON"))?;
    let alpha2: BTreeMap<&str, &str> = codes
        .as_array()
        .ok_or(GeoError("codes are not a list"))?
        .iter()
        .filter_map(|c| Some((c.get(2)?.as_str()?, c.get(0)?.as_str()?)))
        .collect();
    let scale = &topo["transform"]["scale"];
    let translate = &topo["transform"]["translate"];
    let num = |v: &Value| v.as_f64().ok_or(GeoError("transform is not numbers"));
    let (sx, sy, tx, ty) = (
        num(&scale[0])?,
        num(&scale[1])?,
        num(&translate[0])?,
        num(&translate[1])?,
    );
    // Arcs: delta-encoded quantized positions, made absolute degrees.
    let arcs: Vec<Vec<(f64, f64)>> = topo["arcs"]
        .as_array()
        .ok_or(GeoError("no arcs"))?
        .iter()
        .map(|arc| {
            let (mut x, mut y) = (0i64, 0i64);
            arc.as_array()
                .map(|points| {
                    points
                        .iter()
                        .filter_map(|p| {
                            x += p.get(0)?.as_i64()?;
                            y += p.get(1)?.as_i64()?;
                            Some((x as f64 * sx + tx, y as f64 * sy + ty))
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let ring = |indexes: &Value| -> (Vec<(f64, f64)>, Vec<usize>) {
        let mut points = Vec::new();
        let mut used = Vec::new();
        for i in indexes
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
        {
            let (at, reversed) = if i < 0 {
                ((!i) as usize, true)
            } else {
                (i as usize, false)
            };
            used.push(at);
            let Some(arc) = arcs.get(at) else { continue };
            let mut part: Vec<(f64, f64)> = arc.clone();
            if reversed {
                part.reverse();
            }
            // Consecutive arcs share their joining point.
            let skip = usize::from(!points.is_empty());
            points.extend(part.into_iter().skip(skip));
        }
        (points, used)
    };
    struct Polygon {
        area_km2: f64,
        lat: f64,
        lon: f64,
        arcs: Vec<usize>,
        /// The outer ring's points (lon, lat).
        points: Vec<(f64, f64)>,
    }
    struct Shape {
        polygons: Vec<Polygon>,
    }
    let mut shapes: BTreeMap<String, Shape> = BTreeMap::new();
    let geometries = topo["objects"]["countries"]["geometries"]
        .as_array()
        .ok_or(GeoError("no countries"))?;
    for g in geometries {
        let code = match (g["id"].as_str(), g["properties"]["name"].as_str()) {
            (Some(id), _) => alpha2.get(id).map(|c| c.to_string()),
            // Kosovo has no ISO numeric code; registries use XK.
            (None, Some("Kosovo")) => Some("XK".to_string()),
            _ => None,
        };
        let Some(code) = code else { continue };
        let polygons: Vec<&Value> = match g["type"].as_str() {
            Some("Polygon") => vec![&g["arcs"]],
            Some("MultiPolygon") => g["arcs"].as_array().into_iter().flatten().collect(),
            _ => continue,
        };
        let shape = shapes.entry(code).or_insert_with(|| Shape {
            polygons: Vec::new(),
        });
        for polygon in polygons {
            let rings = polygon.as_array().map(Vec::as_slice).unwrap_or_default();
            let Some((outer, holes)) = rings.split_first() else {
                continue;
            };
            // The area and centre of the outer ring; the borders of the
            // holes too (an enclave such as Lesotho is a neighbour).
            let (points, mut used) = ring(outer);
            for hole in holes {
                used.extend(ring(hole).1);
            }
            if let Some((area_km2, lat, lon)) = area_and_centre(&points) {
                shape.polygons.push(Polygon {
                    area_km2,
                    lat,
                    lon,
                    arcs: used,
                    points,
                });
            }
        }
    }
    // A country's main polygons: at least a quarter of its largest (the
    // mainland and its large islands, not far territories: France's
    // Guiana does not make France Brazil's neighbour).
    fn main(s: &Shape) -> Vec<&Polygon> {
        let largest = s.polygons.iter().map(|p| p.area_km2).fold(0.0, f64::max);
        s.polygons
            .iter()
            .filter(|p| p.area_km2 >= largest / 4.0)
            .collect()
    }
    let mut near: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    fn pair<'s>(near: &mut BTreeMap<&'s str, BTreeSet<&'s str>>, a: &'s str, b: &'s str) {
        near.entry(a).or_default().insert(b);
        near.entry(b).or_default().insert(a);
    }
    // Borders: main polygons sharing an arc.
    let mut by_arc: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
    for (code, s) in &shapes {
        for p in main(s) {
            for a in &p.arcs {
                by_arc.entry(*a).or_default().insert(code);
            }
        }
    }
    for owners in by_arc.values() {
        for a in owners {
            for b in owners.iter().filter(|b| *b != a) {
                pair(&mut near, a, b);
            }
        }
    }
    // Narrow seas: main polygons within `NEAR_KM` of each other (Singapore
    // and the Malay peninsula, Britain and Ireland), found through a grid
    // of one-degree cells.
    // Per one-degree cell (lat, lon): each country's points in it.
    type Cells<'s> = BTreeMap<(i32, i32), BTreeMap<&'s str, Vec<(f64, f64)>>>;
    let mut cells: Cells = BTreeMap::new();
    for (code, s) in &shapes {
        for p in main(s) {
            for &(lon, lat) in &p.points {
                let lon = (lon + 180.0).rem_euclid(360.0) - 180.0;
                let cell = (lat.floor() as i32, lon.floor() as i32);
                cells
                    .entry(cell)
                    .or_default()
                    .entry(code)
                    .or_default()
                    .push((lat, lon));
            }
        }
    }
    for (&(clat, clon), here) in &cells {
        // Enough cells east and west to span `NEAR_KM` at this latitude.
        let lat = f64::from(clat.abs().max((clat + 1).abs()).min(89));
        let span = (NEAR_KM / (KM_PER_DEGREE * lat.to_radians().cos())).ceil() as i32;
        for dlat in -1..=1 {
            for dlon in -span..=span {
                let Some(there) =
                    cells.get(&(clat + dlat, (clon + dlon + 180).rem_euclid(360) - 180))
                else {
                    continue;
                };
                for (a, pa) in here {
                    for (b, pb) in there.iter().filter(|(b, _)| *b > a) {
                        if near.get(a).is_some_and(|n| n.contains(b)) {
                            continue;
                        }
                        let close = pa.iter().any(|&(la, loa)| {
                            pb.iter()
                                .any(|&(lb, lob)| haversine_km(la, loa, lb, lob) <= NEAR_KM)
                        });
                        if close {
                            pair(&mut near, a, b);
                        }
                    }
                }
            }
        }
    }
    let mut out = String::from("code,lat,lon,radius_km,near\n");
    for (code, s) in &shapes {
        let Some(largest) = s
            .polygons
            .iter()
            .max_by(|a, b| a.area_km2.total_cmp(&b.area_km2))
        else {
            continue;
        };
        // The farthest point of its main land from its centre: no place of
        // it lies farther, so a distance less both reaches is never more
        // than the distance between two of their places.
        let reach = main(s)
            .iter()
            .flat_map(|p| p.points.iter())
            .map(|&(lon, lat)| haversine_km(largest.lat, largest.lon, lat, lon))
            .fold(0.0, f64::max);
        let close: Vec<&str> = near
            .get(code.as_str())
            .into_iter()
            .flatten()
            .copied()
            .collect();
        out.push_str(&format!(
            "{code},{:.2},{:.2},{:.0},{}\n",
            largest.lat,
            largest.lon,
            reach.ceil(),
            close.join(" ")
        ));
    }
    Ok(out)
}

/// A ring's area (km²) and centre (lat, lon), on a plane scaled by the
/// cosine of its mean latitude (good enough for a country's centre).
fn area_and_centre(points: &[(f64, f64)]) -> Option<(f64, f64, f64)> {
    if points.len() < 3 {
        return None;
    }
    // Longitudes made continuous across the antimeridian (a ring that
    // crosses it runs past 180°), the centre brought back after.
    let mut points = points.to_vec();
    for i in 1..points.len() {
        let step = points[i].0 - points[i - 1].0;
        if step > 180.0 {
            points[i].0 -= 360.0 * (step / 360.0).round();
        } else if step < -180.0 {
            points[i].0 += 360.0 * (-step / 360.0).round();
        }
    }
    let points = &points[..];
    let lat0 = points.iter().map(|p| p.1).sum::<f64>() / points.len() as f64;
    let k = lat0.to_radians().cos().max(0.01);
    let (mut a2, mut cx, mut cy) = (0.0, 0.0, 0.0);
    for w in points
        .windows(2)
        .chain(std::iter::once(&[points[points.len() - 1], points[0]][..]))
    {
        let (x0, y0, x1, y1) = (w[0].0 * k, w[0].1, w[1].0 * k, w[1].1);
        let cross = x0 * y1 - x1 * y0;
        a2 += cross;
        cx += (x0 + x1) * cross;
        cy += (y0 + y1) * cross;
    }
    if a2.abs() < 1e-12 {
        return None;
    }
    let (x, y) = (cx / (3.0 * a2), cy / (3.0 * a2));
    let lon = (x / k + 180.0).rem_euclid(360.0) - 180.0;
    Some(((a2 / 2.0).abs() * KM_PER_DEGREE * KM_PER_DEGREE, y, lon))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> Country {
        Country::parse(code).unwrap()
    }

    #[test]
    fn countries_have_their_centres_sizes_and_the_countries_near_them() {
        let all = countries();
        assert!(all.len() > 200, "{}", all.len());
        let us = place(c("US")).unwrap();
        // The contiguous states' centre, not Alaska's pull.
        assert!(
            (35.0..42.0).contains(&us.lat) && (-103.0..-93.0).contains(&us.lon),
            "{us:?}"
        );
        // From Kansas to the farthest of the contiguous states (not Alaska,
        // which is not main land).
        assert!((2_400.0..3_000.0).contains(&us.radius_km), "{us:?}");
        let fr = place(c("FR")).unwrap();
        assert!(
            (45.0..48.0).contains(&fr.lat) && (1.0..4.0).contains(&fr.lon),
            "{fr:?}"
        );
        assert!(near(c("DE"), c("FR")) && near(c("FR"), c("DE")));
        assert!(near(c("US"), c("CA")) && near(c("US"), c("MX")));
        // Across a strait: Singapore and the Malay peninsula (Malaysia's
        // centre is on Borneo, its largest island), Britain and Ireland.
        assert!(near(c("SG"), c("MY")) && near(c("MY"), c("SG")));
        assert!(near(c("GB"), c("IE")) && near(c("GB"), c("FR")));
        // Not through far territories: France's Guiana borders Brazil,
        // Alaska faces Russia.
        assert!(!near(c("FR"), c("BR")) && !near(c("BR"), c("FR")));
        assert!(!near(c("US"), c("RU")));
        assert!(!near(c("GB"), c("DE")));
        assert!(!near(c("US"), c("JP")));
        // Paris to Berlin is about 880 km; the centres are a little apart.
        let d = distance_km(fr, place(c("DE")).unwrap());
        assert!((600.0..1_100.0).contains(&d), "{d}");
        let jp = place(c("JP")).unwrap();
        let d = distance_km(us, jp);
        assert!((9_500.0..11_000.0).contains(&d), "{d}");
        assert!(place(c("EU")).is_none());
    }

    /// The committed table is what the installed packages make (`npm ci`).
    #[test]
    fn the_table_is_derived_from_the_installed_natural_earth_data() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node_modules");
        let read = |p: &str| std::fs::read_to_string(root.join(p));
        let (Ok(topo), Ok(codes)) = (
            read("world-atlas/countries-50m.json"),
            read("i18n-iso-countries/codes.json"),
        ) else {
            assert!(
                std::env::var_os("SNC_TEST_DATA_REQUIRED").is_none(),
                "the installed data is missing (npm ci)"
            );
            eprintln!("skipped: world-atlas and i18n-iso-countries are not installed (npm ci)");
            return;
        };
        let made = build(&topo, &codes).unwrap();
        assert_eq!(
            made,
            COUNTRIES,
            "data/countries.csv is stale: cargo run -p snc-ipdata --example countries > crates/ipdata/data/countries.csv"
        );
    }
}
