//! Size-limited containers for wire types.
//!
//! Every variable-length field of a message or transcript entry is one of
//! these, so a hostile peer cannot make a decoder allocate more than the
//! field's limit: the length is checked *before* anything is allocated, and
//! an over-long field is a decode error.

use core::{fmt, marker::PhantomData, ops::Deref};

use serde::{
    de::{self, SeqAccess, Visitor},
    Deserialize, Deserializer, Serialize, Serializer,
};

/// A `Vec<T>` of at most `N` elements.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BoundedVec<T, const N: usize>(Vec<T>);

impl<T, const N: usize> Default for BoundedVec<T, N> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

/// A byte string of at most `N` bytes.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct BoundedBytes<const N: usize>(Vec<u8>);

/// A UTF-8 string of at most `N` bytes.
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct BoundedString<const N: usize>(String);

/// A value did not fit its bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{len} exceeds the limit of {max}")]
pub struct TooLong {
    /// The length given.
    pub len: usize,
    /// The limit.
    pub max: usize,
}

impl<T, const N: usize> BoundedVec<T, N> {
    /// Wraps a vector.
    ///
    /// # Errors
    ///
    /// [`TooLong`] if it has more than `N` elements.
    pub fn new(v: Vec<T>) -> Result<Self, TooLong> {
        if v.len() > N {
            return Err(TooLong {
                len: v.len(),
                max: N,
            });
        }
        Ok(Self(v))
    }

    /// The inner vector.
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<const N: usize> BoundedBytes<N> {
    /// Wraps bytes.
    ///
    /// # Errors
    ///
    /// [`TooLong`] if there are more than `N`.
    pub fn new(v: Vec<u8>) -> Result<Self, TooLong> {
        if v.len() > N {
            return Err(TooLong {
                len: v.len(),
                max: N,
            });
        }
        Ok(Self(v))
    }

    /// The inner bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
}

impl<const N: usize> BoundedString<N> {
    /// Wraps a string.
    ///
    /// # Errors
    ///
    /// [`TooLong`] if it is longer than `N` bytes.
    pub fn new(s: impl Into<String>) -> Result<Self, TooLong> {
        let s = s.into();
        if s.len() > N {
            return Err(TooLong {
                len: s.len(),
                max: N,
            });
        }
        Ok(Self(s))
    }

    /// The inner string.
    pub fn into_inner(self) -> String {
        self.0
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<T, const N: usize> Deref for BoundedVec<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<const N: usize> Deref for BoundedBytes<N> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<const N: usize> Deref for BoundedString<N> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<T: fmt::Debug, const N: usize> fmt::Debug for BoundedVec<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const N: usize> fmt::Debug for BoundedBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl<const N: usize> fmt::Debug for BoundedString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<const N: usize> fmt::Display for BoundedString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<T: Serialize, const N: usize> Serialize for BoundedVec<T, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<const N: usize> Serialize for BoundedBytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<const N: usize> Serialize for BoundedString<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for BoundedVec<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = BoundedVec<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a sequence of at most {N} elements")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let hint = seq.size_hint().unwrap_or(0);
                if hint > N {
                    return Err(de::Error::invalid_length(hint, &self));
                }
                // Never trust the hint for more than the bound, nor for more
                // than a modest preallocation.
                let mut out = Vec::with_capacity(hint.min(4096));
                while let Some(x) = seq.next_element()? {
                    if out.len() == N {
                        return Err(de::Error::invalid_length(N + 1, &self));
                    }
                    out.push(x);
                }
                Ok(BoundedVec(out))
            }
        }
        d.deserialize_seq(V::<T, N>(PhantomData))
    }
}

impl<'de, const N: usize> Deserialize<'de> for BoundedBytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for V<N> {
            type Value = BoundedBytes<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "at most {N} bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                if v.len() > N {
                    return Err(E::invalid_length(v.len(), &self));
                }
                Ok(BoundedBytes(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
                if v.len() > N {
                    return Err(E::invalid_length(v.len(), &self));
                }
                Ok(BoundedBytes(v))
            }
        }
        d.deserialize_bytes(V::<N>)
    }
}

impl<'de, const N: usize> Deserialize<'de> for BoundedString<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for V<N> {
            type Value = BoundedString<N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a string of at most {N} bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.len() > N {
                    return Err(E::invalid_length(v.len(), &self));
                }
                Ok(BoundedString(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                if v.len() > N {
                    return Err(E::invalid_length(v.len(), &self));
                }
                Ok(BoundedString(v))
            }
        }
        d.deserialize_str(V::<N>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_enforced_on_decode() {
        let v: Vec<u32> = (0..5).collect();
        let bytes = postcard::to_allocvec(&v).expect("encode");
        assert!(postcard::from_bytes::<BoundedVec<u32, 5>>(&bytes).is_ok());
        assert!(postcard::from_bytes::<BoundedVec<u32, 4>>(&bytes).is_err());

        let b = BoundedBytes::<8>::new(vec![7; 8]).expect("fits");
        let bytes = postcard::to_allocvec(&b).expect("encode");
        assert_eq!(
            postcard::from_bytes::<BoundedBytes<8>>(&bytes).expect("decode"),
            b
        );
        assert!(postcard::from_bytes::<BoundedBytes<7>>(&bytes).is_err());

        let bytes = postcard::to_allocvec(&"hello").expect("encode");
        assert!(postcard::from_bytes::<BoundedString<5>>(&bytes).is_ok());
        assert!(postcard::from_bytes::<BoundedString<4>>(&bytes).is_err());
        assert!(BoundedString::<4>::new("hello").is_err());
    }

    #[test]
    fn a_huge_claimed_length_is_refused_without_allocating() {
        // varint(u64::MAX / 2) as a sequence length, then nothing.
        let mut bytes = Vec::new();
        let mut n: u64 = u64::MAX / 2;
        while n >= 0x80 {
            bytes.push((n as u8) | 0x80);
            n >>= 7;
        }
        bytes.push(n as u8);
        assert!(postcard::from_bytes::<BoundedVec<u64, 1000>>(&bytes).is_err());
        assert!(postcard::from_bytes::<BoundedBytes<1000>>(&bytes).is_err());
        assert!(postcard::from_bytes::<BoundedString<1000>>(&bytes).is_err());
    }
}
