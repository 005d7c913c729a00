//! Named tensors read from a file (a checkpoint's) copied into live ones (a model's
//! variables, an optimizer's state), every one checked for presence and shape first.
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use tch::Tensor;

/// Copies `saved[name]` into each of `live` (in name order), after checking that every
/// live tensor has a saved one of the same shape; `from` names the file in errors, and
/// `missing_hint(name)` adds what a missing name may mean.
pub fn copy_into(
    saved: &HashMap<String, Tensor>,
    live: &HashMap<String, Tensor>,
    from: &Path,
    missing_hint: impl Fn(&str) -> &'static str,
) -> Result<()> {
    let mut names: Vec<&String> = live.keys().collect();
    names.sort();
    for name in names {
        let var = &live[name];
        let src = saved.get(name).ok_or_else(|| {
            Error::bad_file(
                from,
                format!(
                    "checkpoint is from another model: it has no tensor `{name}`{}",
                    missing_hint(name)
                ),
            )
        })?;
        if src.size() != var.size() {
            return Err(Error::bad_file(
                from,
                format!(
                    "checkpoint is from another model or vocabulary: `{name}` has shape {:?}, \
                     this model needs {:?}",
                    src.size(),
                    var.size()
                ),
            ));
        }
        tch::no_grad(|| {
            let mut v = var.shallow_clone();
            v.copy_(&src.to_device(var.device()));
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_matching_tensors_and_names_the_missing_or_misshapen_one() {
        let saved = HashMap::from([("a".to_string(), Tensor::from_slice(&[1.0f32, 2.0]))]);
        let live = HashMap::from([("a".to_string(), Tensor::zeros([2], tch::kind::FLOAT_CPU))]);
        copy_into(&saved, &live, Path::new("c.safetensors"), |_| "").unwrap();
        assert_eq!(Vec::<f32>::try_from(&live["a"]).unwrap(), [1.0, 2.0]);
        let other = HashMap::from([("b".to_string(), Tensor::zeros([2], tch::kind::FLOAT_CPU))]);
        let e = copy_into(&saved, &other, Path::new("c.safetensors"), |_| " (hint)");
        let msg = e.unwrap_err().to_string();
        assert!(
            msg.contains("c.safetensors") && msg.contains("`b` (hint)"),
            "{msg}"
        );
        let wide = HashMap::from([("a".to_string(), Tensor::zeros([3], tch::kind::FLOAT_CPU))]);
        let msg = copy_into(&saved, &wide, Path::new("c.safetensors"), |_| "")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("shape [2]") && msg.contains("[3]"), "{msg}");
    }
}
