//! ServiceNow release families, Eureka to Australia, and reading the family
//! from `glide.war` (`glide-tokyo-07-08-2022__patch5-…`) or `glide.buildname`.

use serde::Serialize;

/// Release families in order; the index orders them.
pub const FAMILIES: [&str; 23] = [
    "Eureka",
    "Fuji",
    "Geneva",
    "Helsinki",
    "Istanbul",
    "Jakarta",
    "Kingston",
    "London",
    "Madrid",
    "New York",
    "Orlando",
    "Paris",
    "Quebec",
    "Rome",
    "San Diego",
    "Tokyo",
    "Utah",
    "Vancouver",
    "Washington DC",
    "Xanadu",
    "Yokohama",
    "Zurich",
    "Australia",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Release(usize);

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphabetic())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

impl Release {
    /// By family name in any spelling: `Washington DC`, `washingtondc`, `san_diego`.
    pub fn from_name(name: &str) -> Option<Release> {
        let wanted = squash(name);
        FAMILIES
            .iter()
            .position(|f| squash(f) == wanted)
            .map(Release)
    }

    pub fn name(self) -> &'static str {
        FAMILIES.get(self.0).copied().unwrap_or("Unknown")
    }

    /// `glide-tokyo-07-08-2022__patch5-…` → Tokyo.
    pub fn from_glide_war(war: &str) -> Option<Release> {
        let rest = war.trim().strip_prefix("glide-")?;
        Release::from_name(rest.split('-').next()?)
    }

    /// `glide.buildname` is the family name itself (`Tokyo`, `Washington DC`).
    pub fn from_build_name(name: &str) -> Option<Release> {
        Release::from_name(name.trim())
    }
}

/// The releases a deployment accepts (default: all of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleaseRange {
    pub oldest: Release,
    pub newest: Release,
}

impl Default for ReleaseRange {
    fn default() -> Self {
        ReleaseRange {
            oldest: Release(0),
            newest: Release(FAMILIES.len() - 1),
        }
    }
}

impl ReleaseRange {
    /// From `SUPPORTED_RELEASES`, e.g. `Eureka..Tokyo`; empty means all.
    pub fn parse(spec: Option<&str>) -> Option<ReleaseRange> {
        let spec = spec.map(str::trim).unwrap_or("");
        if spec.is_empty() {
            return Some(ReleaseRange::default());
        }
        let (a, b) = spec.split_once("..")?;
        let oldest = if a.trim().is_empty() {
            Release(0)
        } else {
            Release::from_name(a)?
        };
        let newest = if b.trim().is_empty() {
            Release(FAMILIES.len() - 1)
        } else {
            Release::from_name(b)?
        };
        (oldest <= newest).then_some(ReleaseRange { oldest, newest })
    }

    pub fn contains(&self, r: Release) -> bool {
        self.oldest <= r && r <= self.newest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_parse_from_war_and_build_name() {
        assert_eq!(
            Release::from_glide_war("glide-tokyo-07-08-2022__patch5-12-14-2022").map(Release::name),
            Some("Tokyo")
        );
        assert_eq!(
            Release::from_glide_war("glide-washingtondc-12-20-2023__patch2").map(Release::name),
            Some("Washington DC")
        );
        assert_eq!(
            Release::from_glide_war("glide-newyork-06-26-2019__patch9").map(Release::name),
            Some("New York")
        );
        assert_eq!(
            Release::from_build_name("San Diego").map(Release::name),
            Some("San Diego")
        );
        assert_eq!(Release::from_glide_war("tokyo"), None);
        assert_eq!(Release::from_glide_war("glide-atlantis-01-01-2030"), None);
        assert!(Release::from_name("eureka") < Release::from_name("australia"));
    }

    #[test]
    fn ranges() {
        let r = ReleaseRange::parse(Some("Eureka..Tokyo")).unwrap();
        assert!(r.contains(Release::from_name("Fuji").unwrap()));
        assert!(!r.contains(Release::from_name("Utah").unwrap()));
        assert!(ReleaseRange::parse(Some("Tokyo..Eureka")).is_none());
        assert!(ReleaseRange::parse(Some("Atlantis..")).is_none());
        assert!(ReleaseRange::parse(None)
            .unwrap()
            .contains(Release::from_name("Australia").unwrap()));
    }
}
