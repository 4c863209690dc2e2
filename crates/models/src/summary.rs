//! Per-layer summaries: output shape, parameters and multiply-adds, computed from shapes alone.
//!
//! Multiply-adds follow the convention of torchvision's published figures: a convolution costs
//! `C_in/groups · k_h · k_w · C_out · H_out · W_out`, a linear layer `in · out`; biases,
//! normalisation, activations and pooling count as zero.

use std::fmt;

/// A `[channels, height, width]` feature-map shape (batch excluded).
pub type Shape3 = [usize; 3];

/// The shape of a layer's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutShape {
    /// A feature map `[C, H, W]`.
    Map(Shape3),
    /// A flat vector of features.
    Flat(usize),
}

impl fmt::Display for OutShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutShape::Map([c, h, w]) => write!(f, "[{c}, {h}, {w}]"),
            OutShape::Flat(n) => write!(f, "[{n}]"),
        }
    }
}

/// One row of a [`Summary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// Dotted path of the layer (`layer1.0.conv1`).
    pub name: String,
    /// The kind of layer (`Conv2d`, `Linear`, …).
    pub kind: String,
    /// Output shape for one image.
    pub output: OutShape,
    /// Trainable parameters of this layer alone.
    pub params: usize,
    /// Multiply-adds for one image.
    pub mult_adds: u64,
}

/// A table of layers with their shapes, parameter counts and costs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The input shape the summary was computed for.
    pub input: Option<Shape3>,
    /// One row per layer, in execution order.
    pub rows: Vec<SummaryRow>,
}

impl Summary {
    /// An empty summary for `input`.
    pub fn new(input: Shape3) -> Self {
        Self {
            input: Some(input),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn push(&mut self, name: impl Into<String>, kind: &str, output: OutShape, params: usize, mult_adds: u64) {
        self.rows.push(SummaryRow {
            name: name.into(),
            kind: kind.to_string(),
            output,
            params,
            mult_adds,
        });
    }

    /// Adds a linear layer's row (`in · out` multiply-adds); returns its output width.
    pub fn push_linear(&mut self, name: impl Into<String>, fc: &burn::nn::Linear) -> usize {
        let [i, o] = fc.weight.dims();
        self.push(name, "Linear", OutShape::Flat(o), crate::keys::param_count(fc), (i * o) as u64);
        o
    }

    /// Adds the row of a batch norm over a `shape` map.
    pub fn push_batch_norm(&mut self, name: impl Into<String>, bn: &burn::nn::BatchNorm, shape: Shape3) {
        self.push(name, "BatchNorm2d", OutShape::Map(shape), crate::keys::param_count(bn), 0);
    }

    /// The first layer this input does not fit: one left with an empty feature map, or a
    /// linear layer whose input width differs from what the layer before it gives (LeNet-5's
    /// fixed `16·5·5` flatten). `None` when the input fits every layer.
    pub fn first_misfit(&self) -> Option<&SummaryRow> {
        let size = |o: &OutShape| match *o {
            OutShape::Map([c, h, w]) => c * h * w,
            OutShape::Flat(n) => n,
        };
        let mut before = self.input.map(|[c, h, w]| c * h * w);
        for row in &self.rows {
            let empty = matches!(row.output, OutShape::Map([_, 0, _]) | OutShape::Map([_, _, 0]));
            let linear_in = match (row.kind.as_str(), row.output) {
                ("Linear", OutShape::Flat(o)) if o > 0 => Some(row.mult_adds as usize / o),
                _ => None,
            };
            if empty || linear_in.is_some_and(|i| Some(i) != before) {
                return Some(row);
            }
            before = Some(size(&row.output));
        }
        None
    }

    /// Sum of the rows' parameters.
    pub fn total_params(&self) -> usize {
        self.rows.iter().map(|r| r.params).sum()
    }

    /// Sum of the rows' multiply-adds.
    pub fn total_mult_adds(&self) -> u64 {
        self.rows.iter().map(|r| r.mult_adds).sum()
    }

    /// The rows whose name starts with `prefix` (a layer and everything inside it).
    pub fn rows_under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a SummaryRow> + 'a {
        self.rows
            .iter()
            .filter(move |r| r.name == prefix || r.name.starts_with(&format!("{prefix}.")))
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.rows.iter().map(|r| r.name.len()).max().unwrap_or(5).max(5);
        if let Some([c, h, w]) = self.input {
            writeln!(f, "input: [{c}, {h}, {w}]")?;
        }
        writeln!(
            f,
            "{:<width$}  {:<18}  {:<16}  {:>12}  {:>16}",
            "layer", "kind", "output", "params", "mult-adds"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<width$}  {:<18}  {:<16}  {:>12}  {:>16}",
                r.name,
                r.kind,
                r.output.to_string(),
                group(r.params as u64),
                group(r.mult_adds)
            )?;
        }
        writeln!(f, "total params: {}", self.total_params())?;
        write!(f, "total mult-adds: {}", self.total_mult_adds())
    }
}

/// `1234567` → `1,234,567`.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Output length of a sliding window (convolution or pooling) along one axis, PyTorch's rule.
pub fn window_out(input: usize, kernel: usize, stride: usize, pad_total: usize, dilation: usize, ceil: bool) -> usize {
    let span = dilation * (kernel - 1) + 1;
    let padded = input + pad_total;
    if padded < span {
        return 0;
    }
    let steps = padded - span;
    let mut out = if ceil { steps.div_ceil(stride) } else { steps / stride } + 1;
    // With ceil mode, the last window must start inside the input or its left padding.
    if ceil && (out - 1) * stride >= input + pad_total / 2 {
        out -= 1;
    }
    out
}

/// The cost of a "same" convolution, as the course computes it (multiplications, no bias).
pub fn conv_mults(height: usize, width: usize, in_channels: usize, kernel: usize, filters: usize) -> u64 {
    (height * width * filters) as u64 * (kernel * kernel * in_channels) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sizes_follow_pytorch() {
        assert_eq!(window_out(224, 11, 4, 4, 1, false), 55); // AlexNet conv1
        assert_eq!(window_out(55, 3, 2, 0, 1, false), 27);
        assert_eq!(window_out(112, 3, 2, 0, 1, true), 56); // GoogLeNet maxpool1 (ceil)
        assert_eq!(window_out(14, 3, 2, 0, 1, true), 7);
        assert_eq!(window_out(7, 2, 2, 0, 1, true), 4);
    }

    #[test]
    fn grouping_and_course_costs() {
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(12), "12");
        assert_eq!(conv_mults(28, 28, 192, 5, 32), 120_422_400);
        assert_eq!(
            conv_mults(28, 28, 192, 1, 16) + conv_mults(28, 28, 16, 5, 32),
            12_443_648
        );
    }
}
