//! `metrics.csv`, the table of a run's epochs.

use crate::fit::EpochMetrics;

/// `metrics.csv`: one row per epoch.
pub fn metrics_csv(history: &[EpochMetrics]) -> String {
    let mut csv = String::from(
        "epoch,lr,train_loss,train_accuracy,train_top5,valid_loss,valid_accuracy,valid_top5,train_seconds,images_per_second,data_wait_share\n",
    );
    for m in history {
        csv.push_str(&format!(
            "{},{:.6e},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.3},{:.1},{:.4}\n",
            m.epoch,
            m.lr,
            m.train_loss,
            m.train_accuracy,
            m.train_top5,
            m.valid_loss,
            m.valid_accuracy,
            m.valid_top5,
            m.train_seconds,
            m.images_per_second,
            m.data_wait_share
        ));
    }
    csv
}
