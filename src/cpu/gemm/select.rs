//! Which microkernel runs: the [`Kernel`] kinds, CPU detection and the
//! `FERROCONV_GEMM_KERNEL` override (see the module docs of [`super`]).

#[cfg(target_arch = "x86_64")]
use super::{Avx2Fma, Avx512F};
use super::{MicroKernel, Portable};
use std::sync::OnceLock;

/// A microkernel family the packed driver can run, named for tests, benches and the
/// `FERROCONV_GEMM_KERNEL` override. Not every kind runs on every CPU: see
/// [`Kernel::supported`].
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// [`Avx512F`]: AVX-512F, 8×48 tile, 6×64 ([`Avx512FLow`]) when `m ≤ 6`, 4×80
    /// ([`Avx512FLow4`]) when `m ≤ 4` (x86-64 with AVX-512F, AVX2 and FMA).
    Avx512,
    /// [`Avx2Fma`]: AVX2 + FMA, 6×16 tile (x86-64 with AVX2 and FMA).
    Avx2,
    /// [`Portable`]: `wide::f32x8`, any CPU.
    Portable,
}

impl Kernel {
    /// Every kind, fastest first.
    pub const ALL: [Kernel; 3] = [Kernel::Avx512, Kernel::Avx2, Kernel::Portable];

    /// The instruction set's short name: `avx512f`, `avx2+fma` or `portable` (the
    /// values `FERROCONV_GEMM_KERNEL` accepts, `avx512` and `avx2` also accepted).
    pub fn isa(self) -> &'static str {
        match self {
            Kernel::Avx512 => "avx512f",
            Kernel::Avx2 => "avx2+fma",
            Kernel::Portable => "portable",
        }
    }

    /// Parses a `FERROCONV_GEMM_KERNEL` value.
    pub fn parse(s: &str) -> Result<Kernel, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "avx512" | "avx512f" => Ok(Kernel::Avx512),
            "avx2" | "avx2+fma" => Ok(Kernel::Avx2),
            "portable" => Ok(Kernel::Portable),
            other => Err(format!(
                "FERROCONV_GEMM_KERNEL={other:?}: expected avx512, avx2 or portable"
            )),
        }
    }

    /// The kinds this CPU can run, fastest first (`Portable` always).
    pub fn supported() -> Vec<Kernel> {
        Kernel::ALL
            .into_iter()
            .filter(|k| k.token().is_some())
            .collect()
    }

    /// The kind the fast variants use: `FERROCONV_GEMM_KERNEL` if set to a kind this CPU
    /// supports, else the fastest supported one. Read once per process; an unknown or
    /// unsupported value is reported on stderr once and ignored.
    pub fn selected() -> Kernel {
        best().kind()
    }

    /// The kernel's full name with its tile ("avx512f 8x48").
    pub fn name(self) -> Option<&'static str> {
        self.token().map(|t| match t {
            #[cfg(target_arch = "x86_64")]
            Best::Avx512(k) => k.name(),
            #[cfg(target_arch = "x86_64")]
            Best::Avx2(k) => k.name(),
            Best::Portable(k) => k.name(),
        })
    }

    /// The capability token, if this CPU supports the kind.
    pub(super) fn token(self) -> Option<Best> {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => Avx512F::detect().map(Best::Avx512),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => Avx2Fma::detect().map(Best::Avx2),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Avx512 | Kernel::Avx2 => None,
            Kernel::Portable => Some(Best::Portable(Portable)),
        }
    }
}

/// A microkernel capability token of one of the [`Kernel`] kinds.
#[derive(Clone, Copy, Debug)]
pub(super) enum Best {
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512F),
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2Fma),
    Portable(Portable),
}

impl Best {
    pub(super) fn kind(self) -> Kernel {
        match self {
            #[cfg(target_arch = "x86_64")]
            Best::Avx512(_) => Kernel::Avx512,
            #[cfg(target_arch = "x86_64")]
            Best::Avx2(_) => Kernel::Avx2,
            Best::Portable(_) => Kernel::Portable,
        }
    }

    pub(super) fn mr(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Best::Avx512(_) => Avx512F::MR,
            #[cfg(target_arch = "x86_64")]
            Best::Avx2(_) => Avx2Fma::MR,
            Best::Portable(_) => Portable::MR,
        }
    }
}

/// Detects the CPU (and reads `FERROCONV_GEMM_KERNEL`) once and caches the choice.
pub(super) fn best() -> Best {
    static BEST: OnceLock<Best> = OnceLock::new();
    *BEST.get_or_init(|| {
        let fastest = || {
            Kernel::ALL
                .into_iter()
                .find_map(Kernel::token)
                .unwrap_or(Best::Portable(Portable))
        };
        let Ok(v) = std::env::var("FERROCONV_GEMM_KERNEL") else {
            return fastest();
        };
        match Kernel::parse(&v) {
            Ok(kind) => kind.token().unwrap_or_else(|| {
                eprintln!(
                    "ferroconv: FERROCONV_GEMM_KERNEL={v}: this CPU lacks {}; using {}",
                    kind.isa(),
                    fastest().kind().isa()
                );
                fastest()
            }),
            Err(e) => {
                eprintln!("ferroconv: {e}; using {}", fastest().kind().isa());
                fastest()
            }
        }
    })
}

/// Name of the microkernel the fast variants use on this CPU (for benches and logs).
pub fn best_kernel_name() -> &'static str {
    match best() {
        #[cfg(target_arch = "x86_64")]
        Best::Avx512(k) => k.name(),
        #[cfg(target_arch = "x86_64")]
        Best::Avx2(k) => k.name(),
        Best::Portable(k) => k.name(),
    }
}
