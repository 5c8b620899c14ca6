//! Serial number arithmetic (RFC 1982) for SOA serials.
//!
//! Owns only the comparison rules; it knows nothing about zones, time or I/O.

use std::cmp::Ordering;

/// Half of the serial number space: differences of exactly this size are undefined (RFC 1982 3.2).
const HALF: u32 = 1 << 31;

/// Compares two SOA serials modulo 2^32.
///
/// Returns `None` when the difference is exactly 2^31, which RFC 1982 leaves undefined; callers
/// treat that as "not newer" and log it.
pub fn compare(a: u32, b: u32) -> Option<Ordering> {
    if a == b {
        return Some(Ordering::Equal);
    }
    let distance = b.wrapping_sub(a);
    match distance.cmp(&HALF) {
        Ordering::Less => Some(Ordering::Less),
        Ordering::Greater => Some(Ordering::Greater),
        Ordering::Equal => None,
    }
}

/// True when `candidate` is strictly newer than `current`; the undefined case is "not newer".
pub fn is_newer(candidate: u32, current: u32) -> bool {
    compare(current, candidate) == Some(Ordering::Less)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_order() {
        assert!(is_newer(2, 1));
        assert!(!is_newer(1, 2));
        assert!(!is_newer(7, 7));
        assert_eq!(compare(1, 2), Some(Ordering::Less));
        assert_eq!(compare(2, 1), Some(Ordering::Greater));
    }

    #[test]
    fn wraps_around() {
        assert!(is_newer(0, u32::MAX));
        assert!(is_newer(5, u32::MAX - 5));
        assert!(!is_newer(u32::MAX, 0));
        assert!(is_newer(HALF - 1, 0));
        assert!(!is_newer(HALF + 1, 0));
    }

    #[test]
    fn half_distance_is_undefined_and_never_newer() {
        assert_eq!(compare(0, HALF), None);
        assert_eq!(compare(HALF, 0), None);
        assert!(!is_newer(HALF, 0));
        assert!(!is_newer(0, HALF));
        assert!(!is_newer(10 + HALF, 10));
    }
}
