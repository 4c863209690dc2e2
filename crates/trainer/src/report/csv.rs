//! `metrics.csv`, the table of a run's epochs.

use crate::fit::EpochMetrics;

/// `metrics.csv`: one row per epoch (with `ema`, two more columns: the averaged weights'
/// validation loss and accuracy).
pub fn metrics_csv(history: &[EpochMetrics]) -> String {
    let ema = history.iter().any(|m| m.ema_valid_loss.is_some());
    let mut csv = String::from(
        "epoch,lr,train_loss,train_accuracy,train_top5,valid_loss,valid_accuracy,valid_top5,train_seconds,images_per_second,data_wait_share",
    );
    csv.push_str(if ema {
        ",ema_valid_loss,ema_valid_accuracy\n"
    } else {
        "\n"
    });
    for m in history {
        csv.push_str(&format!(
            "{},{:.6e},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.3},{:.1},{:.4}",
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
        if ema {
            let cell = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
            csv.push_str(&format!(",{},{}", cell(m.ema_valid_loss), cell(m.ema_valid_accuracy)));
        }
        csv.push('\n');
    }
    csv
}
