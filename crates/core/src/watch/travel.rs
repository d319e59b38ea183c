//! Whether two sign-ins of one user could be one person's trip, at
//! country level (`snc_ipdata::geo`): the distance between the countries'
//! centres, less how far each one's main land reaches from its centre (so
//! the distance is never more than between any two of their places, and
//! two sign-ins at the near edges of two large countries are not taken for
//! a long flight), against the time between them at an
//! airliner's speed. Countries near each other (their main lands border or
//! face each other across a strait, `geo::near`) are never a trip.

use snc_ipdata::geo;
use snc_ipdata::Country;

/// Faster than this between two sign-ins is no flight (airliners cruise
/// at about 900 km/h).
pub const AIRLINER_KMH: u32 = 1_000;

/// A trip no airliner makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImpossibleTrip {
    /// Between the centres.
    pub km: u32,
    /// What is left once both countries' size is allowed for.
    pub at_least_km: u32,
    /// The time between the sign-ins.
    pub secs: i64,
    /// `at_least_km` over that time.
    pub kmh: u32,
}

/// A sign-in from `to` at `at` after one from `from` at `from_at` (Unix
/// seconds): `Some` when no airliner could make the trip. `None` for the
/// same country, near ones, a country the data does not place, or a
/// sign-in before the other.
pub fn impossible(from: Country, from_at: i64, to: Country, at: i64) -> Option<ImpossibleTrip> {
    if from == to || at < from_at || geo::near(from, to) {
        return None;
    }
    let (a, b) = (geo::place(from)?, geo::place(to)?);
    let km = geo::distance_km(a, b);
    let at_least = km - a.radius_km - b.radius_km;
    // Sign-ins in one second are a minute apart, not an infinite speed.
    let secs = (at - from_at).max(60);
    let kmh = at_least / (secs as f64 / 3_600.0);
    (kmh > f64::from(AIRLINER_KMH)).then_some(ImpossibleTrip {
        km: km.round() as u32,
        at_least_km: at_least.max(0.0).round() as u32,
        secs: at - from_at,
        kmh: kmh.round() as u32,
    })
}

/// A duration in words: "2 h 5 min", "45 min".
pub fn duration(secs: i64) -> String {
    let minutes = secs.max(0) / 60;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> Country {
        Country::parse(code).unwrap()
    }

    const H: i64 = 3_600;

    #[test]
    fn a_trip_is_impossible_only_when_faster_than_an_airliner() {
        // The US to Japan, 2 hours apart: about 6,000 km at the least (the
        // contiguous states reach some 2,700 km from their centre).
        let t = impossible(c("US"), 0, c("JP"), 2 * H).unwrap();
        assert!((9_000..11_000).contains(&t.km), "{t:?}");
        assert!((5_000..7_000).contains(&t.at_least_km), "{t:?}");
        assert!(t.kmh > 2_500, "{t:?}");
        // Moscow to Berlin is 1,600 km: Russia's reach makes the least
        // distance from it to Germany nothing, so no hour is too short.
        assert_eq!(impossible(c("RU"), 0, c("DE"), H), None);
        // Twelve hours: a flight.
        assert_eq!(impossible(c("US"), 0, c("JP"), 12 * H), None);
        // London to Berlin in 30 minutes, once both countries' size is
        // allowed for, is a few hundred km: not judged impossible.
        assert_eq!(impossible(c("GB"), 0, c("DE"), H / 2), None);
        // Near, however fast (Singapore and Malaysia, whose centre is on
        // Borneo); the same country; unknown places.
        assert_eq!(impossible(c("US"), 0, c("CA"), 60), None);
        assert_eq!(impossible(c("FR"), 0, c("DE"), 1), None);
        assert_eq!(impossible(c("SG"), 0, c("MY"), 600), None);
        assert_eq!(impossible(c("US"), 0, c("US"), 1), None);
        assert_eq!(impossible(c("EU"), 0, c("JP"), 1), None);
        // A late event read after the later sign-in: not a trip.
        assert_eq!(impossible(c("US"), 10 * H, c("JP"), 0), None);
        // Two sign-ins in the same second count as a minute apart.
        let t = impossible(c("BR"), 5, c("JP"), 5).unwrap();
        assert_eq!(t.secs, 0);
        assert!(t.kmh > 100_000, "{t:?}");
    }

    #[test]
    fn durations_read_as_hours_and_minutes() {
        assert_eq!(duration(45 * 60), "45 min");
        assert_eq!(duration(2 * H), "2 h");
        assert_eq!(duration(2 * H + 5 * 60 + 30), "2 h 5 min");
        assert_eq!(duration(-5), "0 min");
    }
}
