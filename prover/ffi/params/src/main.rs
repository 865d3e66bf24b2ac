//! Generates the Groth16 parameters and verifying keys of the WindowPoSt and
//! WinningPoSt circuits for small sectors into FIL_PROOFS_PARAMETER_CACHE.
//!
//! rust-fil-proofs writes a circuit's `.params` and `.vk` files when it is
//! handed an RNG and finds none cached; without one (as filecoin-ffi calls
//! it) it refuses to prove. The files are named after the circuit, so
//! filecoin-ffi finds them in the same folder. A random local setup is not
//! Filecoin's ceremony: these parameters are for tests and devnets only.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use filecoin_proofs::constants::{
    SectorShapeBase, SECTOR_SIZE_2_KIB, SECTOR_SIZE_8_MIB, WINDOW_POST_CHALLENGE_COUNT,
    WINDOW_POST_SECTOR_COUNT, WINNING_POST_CHALLENGE_COUNT, WINNING_POST_SECTOR_COUNT,
};
use filecoin_proofs::parameters::{window_post_public_params, winning_post_public_params};
use filecoin_proofs::types::{PoStConfig, PoStType, SectorSize};
use rand::rngs::OsRng;
use storage_proofs_core::api_version::ApiVersion;
use storage_proofs_core::compound_proof::CompoundProof;
use storage_proofs_post::fallback::{FallbackPoSt, FallbackPoStCircuit, FallbackPoStCompound};

/// The sector sizes whose circuits are small enough to set up on a CPU in
/// seconds. 2 KiB and 8 MiB sectors share one Merkle tree shape.
const SIZES: [u64; 2] = [SECTOR_SIZE_2_KIB, SECTOR_SIZE_8_MIB];

fn main() -> Result<()> {
    let cache = std::env::var("FIL_PROOFS_PARAMETER_CACHE")
        .context("FIL_PROOFS_PARAMETER_CACHE is not set: name the folder the parameters go to")?;
    if cache.is_empty() {
        bail!("FIL_PROOFS_PARAMETER_CACHE is empty: name the folder the parameters go to");
    }
    std::fs::create_dir_all(&cache).with_context(|| format!("create {cache}"))?;
    for size in SIZES {
        for typ in [PoStType::Window, PoStType::Winning] {
            let start = Instant::now();
            generate(size, typ.clone()).with_context(|| format!("{typ:?} PoSt, {size}-byte sectors"))?;
            println!(
                "{:?} PoSt, {} sectors: parameters and verifying key ready in {:.1}s",
                typ,
                human(size),
                start.elapsed().as_secs_f64()
            );
        }
    }
    println!("parameters are in {cache} (local setup: valid for tests and devnets, not on any real chain)");
    Ok(())
}

fn generate(size: u64, typ: PoStType) -> Result<()> {
    let config = post_config(size, typ.clone())?;
    let public = match typ {
        PoStType::Window => window_post_public_params::<SectorShapeBase>(&config)?,
        PoStType::Winning => winning_post_public_params::<SectorShapeBase>(&config)?,
    };
    // Loads the cached files when they exist; generates and writes them
    // with the RNG otherwise. The verifying key comes from the parameters.
    type Compound<'a> = FallbackPoStCompound<SectorShapeBase>;
    <Compound as CompoundProof<FallbackPoSt<'_, SectorShapeBase>, FallbackPoStCircuit<SectorShapeBase>>>::groth_params(
        Some(&mut OsRng),
        &public,
    )?;
    <Compound as CompoundProof<FallbackPoSt<'_, SectorShapeBase>, FallbackPoStCircuit<SectorShapeBase>>>::verifying_key(
        Some(&mut OsRng),
        &public,
    )?;
    Ok(())
}

fn post_config(size: u64, typ: PoStType) -> Result<PoStConfig> {
    let (challenge_count, sector_count) = match typ {
        PoStType::Window => {
            let counts = WINDOW_POST_SECTOR_COUNT.read().expect("WINDOW_POST_SECTOR_COUNT poisoned");
            let n = *counts.get(&size).with_context(|| format!("no WindowPoSt sector count for {size}"))?;
            (WINDOW_POST_CHALLENGE_COUNT, n)
        }
        PoStType::Winning => (WINNING_POST_CHALLENGE_COUNT, WINNING_POST_SECTOR_COUNT),
    };
    Ok(PoStConfig {
        sector_size: SectorSize(size),
        challenge_count,
        sector_count,
        typ,
        priority: false,
        // The circuit (and so its parameters) is the same for every API
        // version; the version changes only how challenges are drawn.
        api_version: ApiVersion::V1_2_0,
    })
}

fn human(size: u64) -> String {
    if size >= 1 << 20 {
        format!("{} MiB", size >> 20)
    } else {
        format!("{} KiB", size >> 10)
    }
}
