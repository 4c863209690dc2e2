//! The one way this workspace derives seeds: every random choice — a sample's augmentation, an
//! epoch's order, the backend's generator — is a function of the run's seed and a path (what it
//! is for, the epoch, the sample) only, so runs repeat exactly and resume exactly.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// splitmix64's finaliser: a bijection of `u64` that scatters nearby inputs.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed for `path` under `seed`: `mix(seed ^ mix(path[0] ^ mix(path[1] ^ …)))`.
pub fn derive(seed: u64, path: &[u64]) -> u64 {
    let inner = path.iter().rev().fold(None, |acc: Option<u64>, &part| {
        Some(mix(acc.map_or(part, |acc| part ^ acc)))
    });
    mix(inner.map_or(seed, |inner| seed ^ inner))
}

/// The first element of a path that names what a seed is for: far from any epoch, so these
/// paths stay apart from the samples' augmentation paths `[epoch, index]`.
pub mod stream {
    /// The order of an epoch's samples.
    pub const ORDER: u64 = 1 << 62;
    /// The backend's generator (dropout) during an epoch.
    pub const BACKEND: u64 = (1 << 62) + 1;
    /// The validation split carved out of the training set.
    pub const VALID_SPLIT: u64 = (1 << 62) + 2;
    /// The training subset of `--subset`.
    pub const SUBSET: u64 = (1 << 62) + 3;
    /// A batch's mixup or cutmix draws.
    pub const MIX: u64 = (1 << 62) + 4;
    /// A sample's first-epoch coin of the alternating flip.
    pub const FLIP: u64 = (1 << 62) + 5;
}

/// `0..len` shuffled for `epoch` of a run seeded `seed`.
pub fn epoch_order(len: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut StdRng::seed_from_u64(derive(seed, &[stream::ORDER, epoch])));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_nests_the_path_under_the_seed() {
        assert_eq!(derive(7, &[3, 9]), mix(7 ^ mix(3 ^ mix(9))));
        assert_eq!(derive(7, &[]), mix(7));
        assert_ne!(derive(7, &[3, 9]), derive(7, &[9, 3]));
        assert_ne!(derive(7, &[1]), derive(8, &[1]));
    }

    #[test]
    fn epochs_and_seeds_give_other_orders() {
        let a = epoch_order(50, 1, 1);
        assert_eq!(a, epoch_order(50, 1, 1));
        assert_ne!(a, epoch_order(50, 1, 2));
        assert_ne!(a, epoch_order(50, 2, 1));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
