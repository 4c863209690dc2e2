//! The ways of learning the target task that the transfer experiment compares, and one run's
//! row of its table.

/// One way of learning the target task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// A fresh network, nothing transferred.
    Scratch,
    /// The whole backbone frozen; a new softmax trained on its cached features.
    FrozenCached,
    /// The backbone frozen up to the stage before its last: the last stage and the new head
    /// train, at the head's rate.
    FinetuneTop,
    /// Everything trains from the weights, the backbone at a fraction of the head's rate.
    FinetuneAll,
    /// Everything trains, each stage at a rate shrinking towards the stem (discriminative
    /// rates, Howard & Ruder 2018): the top stage as in [`Method::FinetuneAll`], each one below
    /// at `stage_lr_decay` times its upper neighbour's rate.
    Discriminative,
}

impl Method {
    /// Every method, in the table's order.
    pub const ALL: [Method; 5] = [
        Method::Scratch,
        Method::FrozenCached,
        Method::FinetuneTop,
        Method::FinetuneAll,
        Method::Discriminative,
    ];

    /// The name in file names, the CSV and `--methods`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Scratch => "scratch",
            Method::FrozenCached => "frozen-cached",
            Method::FinetuneTop => "finetune-top",
            Method::FinetuneAll => "finetune-all",
            Method::Discriminative => "discriminative",
        }
    }

    /// The table's column heading.
    pub fn heading(self) -> &'static str {
        match self {
            Method::Scratch => "from scratch",
            Method::FrozenCached => "frozen backbone + new softmax (cached)",
            Method::FinetuneTop => "fine-tune the last stage",
            Method::FinetuneAll => "fine-tune all, backbone at a lower rate",
            Method::Discriminative => "fine-tune all, rates per stage",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Method::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
            format!("unknown transfer method '{s}' (expected one of {})", names.join(", "))
        })
    }
}

/// One run of the transfer table.
#[derive(Clone, Debug, PartialEq)]
pub struct TransferRow {
    /// Labelled images per class.
    pub per_class: usize,
    /// How the target task was learnt.
    pub method: Method,
    /// The seed of the labelled subset and the initial head.
    pub seed: u64,
    /// Test accuracy.
    pub test_accuracy: f64,
    /// Training seconds of all epochs.
    pub train_seconds: f64,
}
