//! Is an EC public key a point on its curve? Checked once, when a key set is
//! loaded, so that a broken key is refused with its path instead of making
//! every token fail later. Only this check lives here (y² = x³ - 3x + b mod
//! p on P-256 and P-384): signatures are verified by the host.
//!
//! Plain schoolbook arithmetic on little-endian u32 limbs: slow and simple,
//! and it runs a handful of times per key set, never per request.

type Limbs = Vec<u32>;

fn from_be(bytes: &[u8]) -> Limbs {
    let mut out = vec![0u32; bytes.len().div_ceil(4)];
    for (i, b) in bytes.iter().rev().enumerate() {
        if let Some(l) = out.get_mut(i / 4) {
            *l |= u32::from(*b) << (8 * (i % 4));
        }
    }
    trim(out)
}

fn trim(mut v: Limbs) -> Limbs {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

fn cmp(a: &[u32], b: &[u32]) -> std::cmp::Ordering {
    let (a, b) = (trim(a.to_vec()), trim(b.to_vec()));
    a.len()
        .cmp(&b.len())
        .then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

fn add(a: &[u32], b: &[u32]) -> Limbs {
    let n = a.len().max(b.len());
    let mut out = Vec::with_capacity(n + 1);
    let mut carry = 0u64;
    for i in 0..n {
        let s = u64::from(a.get(i).copied().unwrap_or(0))
            + u64::from(b.get(i).copied().unwrap_or(0))
            + carry;
        out.push(s as u32);
        carry = s >> 32;
    }
    out.push(carry as u32);
    trim(out)
}

/// `a - b`, for `a >= b`.
fn sub(a: &[u32], b: &[u32]) -> Limbs {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0i64;
    for (i, x) in a.iter().enumerate() {
        let mut d = i64::from(*x) - i64::from(b.get(i).copied().unwrap_or(0)) - borrow;
        borrow = 0;
        if d < 0 {
            d += 1 << 32;
            borrow = 1;
        }
        out.push(d as u32);
    }
    trim(out)
}

fn mul(a: &[u32], b: &[u32]) -> Limbs {
    let mut out = vec![0u32; a.len() + b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        let mut carry = 0u64;
        for (j, y) in b.iter().enumerate() {
            if let Some(slot) = out.get_mut(i + j) {
                let t = u64::from(*x) * u64::from(*y) + u64::from(*slot) + carry;
                *slot = t as u32;
                carry = t >> 32;
            }
        }
        let mut k = i + b.len();
        while carry > 0 {
            if let Some(slot) = out.get_mut(k) {
                let t = u64::from(*slot) + carry;
                *slot = t as u32;
                carry = t >> 32;
            } else {
                break;
            }
            k += 1;
        }
    }
    trim(out)
}

fn bits(a: &[u32]) -> usize {
    let a = trim(a.to_vec());
    a.last().map_or(0, |top| {
        (a.len() - 1) * 32 + 32 - top.leading_zeros() as usize
    })
}

fn bit(a: &[u32], i: usize) -> bool {
    a.get(i / 32).is_some_and(|l| (l >> (i % 32)) & 1 == 1)
}

/// `a mod m` by shift-and-subtract.
fn rem(a: &[u32], m: &[u32]) -> Limbs {
    let mut r: Limbs = Vec::new();
    for i in (0..bits(a)).rev() {
        // r = 2r + bit
        r = add(&r, &r);
        if bit(a, i) {
            r = add(&r, &[1]);
        }
        if cmp(&r, m) != std::cmp::Ordering::Less {
            r = sub(&r, m);
        }
    }
    r
}

/// A NIST prime curve y² = x³ - 3x + b over GF(p).
struct Curve {
    p: &'static str,
    b: &'static str,
}

const P256: Curve = Curve {
    p: "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
    b: "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
};

const P384: Curve = Curve {
    p: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
    b: "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
};

fn hex(s: &str) -> Limbs {
    let bytes: Vec<u8> = (0..s.len() / 2)
        .filter_map(|i| s.get(2 * i..2 * i + 2))
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect();
    from_be(&bytes)
}

/// Whether (x, y) (big-endian coordinates) is a point of P-256 (or P-384).
pub fn on_curve(x: &[u8], y: &[u8], p384: bool) -> bool {
    let c = if p384 { &P384 } else { &P256 };
    let (p, b) = (hex(c.p), hex(c.b));
    let (x, y) = (from_be(x), from_be(y));
    if cmp(&x, &p).is_ge() || cmp(&y, &p).is_ge() {
        return false;
    }
    let lhs = rem(&mul(&y, &y), &p);
    let x3 = rem(&mul(&rem(&mul(&x, &x), &p), &x), &p);
    // -3x mod p = (p - 3x mod p) mod p
    let three_x = rem(&mul(&x, &[3]), &p);
    let rhs = rem(&add(&add(&x3, &sub(&p, &three_x)), &b), &p);
    cmp(&lhs, &rhs).is_eq()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn arithmetic() {
        assert_eq!(rem(&from_be(&[1, 0, 0, 0, 0]), &[7]), vec![4]); // 2^32 mod 7
        assert_eq!(mul(&[0xffff_ffff], &[0xffff_ffff]), vec![1, 0xffff_fffe]);
        assert_eq!(sub(&[0, 1], &[1]), vec![0xffff_ffff]);
        assert_eq!(rem(&[10], &[3]), vec![1]);
        assert_eq!(
            from_be(&[0x01, 0x02, 0x03, 0x04, 0x05]),
            vec![0x0203_0405, 0x01]
        );
    }

    #[test]
    fn generators_are_on_their_curves() {
        // The base points of P-256 and P-384 (SEC 2).
        let gx = unhex("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296");
        let gy = unhex("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5");
        assert!(on_curve(&gx, &gy, false));
        let mut off = gy.clone();
        off[31] ^= 1;
        assert!(!on_curve(&gx, &off, false));
        assert!(!on_curve(&gx, &gy, true));
        let hx = unhex("aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7");
        let hy = unhex("3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f");
        assert!(on_curve(&hx, &hy, true));
        // Coordinates not below p are refused even if they reduce to a point.
        let p = unhex(P256.p);
        assert!(!on_curve(&p, &gy, false));
    }
}
