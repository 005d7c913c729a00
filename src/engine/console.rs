//! What the trainer prints and sums for its log lines: the PyTorch example's console format
//! (`| epoch   1 |   200/ 2983 batches | lr 20.00 | ms/batch ...`), the progress bar, and
//! the sums over a log interval (kept in the training state, [`IntervalSums`]).
use super::run_dir::IntervalSums;
use super::step_records::StepRecord;
use super::Unit;
use std::io::IsTerminal;

impl IntervalSums {
    pub fn add(&mut self, step: &StepRecord) {
        self.steps += 1;
        self.loss += step.loss;
        self.units += step.units as u64;
        if let Some((c, n)) = step.correct {
            let (c0, n0) = self.correct.unwrap_or((0, 0));
            self.correct = Some((c0 + c, n0 + n));
        }
    }
}

/// Perplexity (token tasks) and accuracy (where counted) of a mean loss.
pub(super) fn quality(
    unit: Unit,
    loss: f64,
    correct: Option<(u64, u64)>,
) -> (Option<f64>, Option<f64>) {
    let ppl = (unit == Unit::Tokens).then(|| loss.exp());
    let acc = correct.map(|(c, n)| c as f64 / n.max(1) as f64);
    (ppl, acc)
}

/// `loss 5.23 | ppl   186.30` (the PyTorch example's format), or with accuracy in percent.
pub(super) fn describe_quality(
    prefix: &str,
    loss: f64,
    ppl: Option<f64>,
    acc: Option<f64>,
) -> String {
    let mut s = format!("{prefix}loss {loss:5.2}");
    if let Some(p) = ppl {
        s.push_str(&format!(" | {prefix}ppl {p:8.2}"));
    }
    if let Some(a) = acc {
        s.push_str(&format!(" | {prefix}acc {:6.2}%", 100.0 * a));
    }
    s
}

/// The learning rate as the PyTorch example prints it (`{:02.2f}`: `20.00`, `0.31`), or in
/// scientific notation when that would show nothing (Adam's `2.00e-3`).
pub(super) fn format_lr(lr: f64) -> String {
    if lr >= 0.01 {
        format!("{lr:.2}")
    } else {
        format!("{lr:.2e}")
    }
}

pub(super) fn progress_bar(len: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} batches [{elapsed_precise} < {eta_precise}] {per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines_keep_the_pytorch_example_format() {
        assert_eq!(format_lr(20.0), "20.00");
        assert_eq!(format_lr(2e-3), "2.00e-3");
        assert_eq!(format_lr(0.05), "0.05");
        assert_eq!(
            describe_quality("valid ", 5.0, Some(5f64.exp()), None),
            "valid loss  5.00 | valid ppl   148.41"
        );
        assert_eq!(
            describe_quality("", 0.5, None, Some(0.875)),
            "loss  0.50 | acc  87.50%"
        );
    }
}
