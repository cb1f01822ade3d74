//! Value types of the configuration that TOML has no word for: sizes
//! written with a unit (`"64 MiB"`), transfer rates (`"2 MiB/s"`) and
//! networks (`"10.0.0.0/8"`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A size in bytes, written as a whole number of bytes or as a string with
/// a unit: `B`, `KiB`, `MiB`, `GiB` (powers of 1024) or `kB`, `MB`, `GB`
/// (powers of 1000), with or without a space (`"64 MiB"`, `"512KiB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n * 1024 * 1024)
    }

    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (size, unit) in UNITS {
            if self.0 >= size && self.0 % size == 0 {
                return write!(f, "{} {unit}", self.0 / size);
            }
        }
        write!(f, "{} B", self.0)
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<ByteSize, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let number: u64 =
            number.parse().map_err(|_| format!("`{s}` is not a size: write, for example, \"64 MiB\""))?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "kB" | "KB" => 1000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => {
                return Err(format!("unknown unit `{other}` in `{s}`: use B, KiB, MiB, GiB, kB, MB or GB"))
            }
        };
        number.checked_mul(factor).map(ByteSize).ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"64 MiB\" or a whole number of bytes")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(SizeVisitor)
    }
}

/// A transfer rate in bytes per second, written as a size per second
/// (`"2 MiB/s"`, `"500 kB/s"`, the units of [`ByteSize`]) or a whole number
/// of bytes per second; `0` (or `"0"`, `"unlimited"`) means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Rate(pub u64);

impl Rate {
    pub const UNLIMITED: Rate = Rate(0);

    /// Bytes per second; `None` when unlimited.
    pub fn limit(self) -> Option<u64> {
        (self.0 > 0).then_some(self.0)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("unlimited");
        }
        write!(f, "{}/s", ByteSize(self.0))
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Rate, String> {
        let s = s.trim();
        if s == "0" || s.eq_ignore_ascii_case("unlimited") {
            return Ok(Rate::UNLIMITED);
        }
        let size = s.strip_suffix("/s").ok_or_else(|| {
            format!("`{s}` is not a rate: write, for example, \"2 MiB/s\" (or 0 for no limit)")
        })?;
        size.parse::<ByteSize>().map(|b| Rate(b.0)).map_err(|e| format!("rate `{s}`: {e}"))
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RateVisitor;
        impl Visitor<'_> for RateVisitor {
            type Value = Rate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate such as \"2 MiB/s\" or a whole number of bytes per second")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rate, E> {
                Ok(Rate(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rate, E> {
                u64::try_from(v).map(Rate).map_err(|_| E::custom("a rate cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(RateVisitor)
    }
}

/// An address or a network in CIDR notation (`"192.0.2.7"`,
/// `"10.0.0.0/8"`, `"2001:db8::/32"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl Cidr {
    /// True if `ip` (IPv4-mapped IPv6 counts as IPv4) lies in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Cidr(IpNet::from(ip.to_canonical())));
        }
        Err(format!("`{s}` is not an address or a network: write, for example, \"192.0.2.0/24\""))
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("64 MiB".parse::<ByteSize>().unwrap(), ByteSize::mib(64));
        assert_eq!("512KiB".parse::<ByteSize>().unwrap(), ByteSize(512 * 1024));
        assert_eq!("2 GB".parse::<ByteSize>().unwrap(), ByteSize(2_000_000_000));
        assert_eq!("100".parse::<ByteSize>().unwrap(), ByteSize(100));
        assert!("64 MiBs".parse::<ByteSize>().is_err());
        assert!("lots".parse::<ByteSize>().is_err());
        assert!("99999999999999 GiB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize::mib(64).to_string(), "64 MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000 B");
    }

    #[test]
    fn rates() {
        assert_eq!("2 MiB/s".parse::<Rate>().unwrap(), Rate(2 << 20));
        assert_eq!("500 kB/s".parse::<Rate>().unwrap(), Rate(500_000));
        assert_eq!("4MiB/s".parse::<Rate>().unwrap(), Rate(4 << 20));
        assert_eq!("100/s".parse::<Rate>().unwrap(), Rate(100));
        assert_eq!("0".parse::<Rate>().unwrap(), Rate::UNLIMITED);
        assert_eq!("unlimited".parse::<Rate>().unwrap().limit(), None);
        assert!("2 MiB".parse::<Rate>().is_err(), "a size is not a rate");
        assert!("2 MiB/h".parse::<Rate>().is_err());
        assert!("fast/s".parse::<Rate>().is_err());
        assert!("-1/s".parse::<Rate>().is_err());
        assert_eq!(Rate(2 << 20).to_string(), "2 MiB/s");
        assert_eq!(Rate(0).to_string(), "unlimited");
        #[derive(serde::Deserialize)]
        struct T {
            r: Rate,
        }
        assert_eq!(toml::from_str::<T>("r = 1000").unwrap().r, Rate(1000));
        assert_eq!(toml::from_str::<T>("r = \"1 GB/s\"").unwrap().r, Rate(1_000_000_000));
        assert!(toml::from_str::<T>("r = -5").is_err());
        assert!(toml::from_str::<T>("r = \"5 MiB\"").is_err());
    }

    #[test]
    fn networks() {
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()));
        assert!(!one.contains("192.0.2.8".parse().unwrap()));
        let v6: Cidr = "2001:db8::1/32".parse().unwrap();
        assert_eq!(v6.to_string(), "2001:db8::/32");
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("example.org".parse::<Cidr>().is_err());
    }
}
