//! The long-tailed protocol (Cao et al. 2019, LDAM-DRW's `IMBALANCECIFAR10`; the CIFAR-10-LT
//! and CIFAR-100-LT benchmarks): the training split keeps `floor(n_max rho^(c/(C-1)))`
//! images of class `c` (`n_max` the largest class's count, `rho = vision.data.imbalance`),
//! the first ones in file order; the test split stays balanced. Accuracy is then also
//! reported per class and over many-shot (more than `vision.data.many_shot` training
//! images), few-shot (fewer than `vision.data.few_shot`) and medium-shot classes.
use super::data::ImageSet;
use crate::engine::ShotAccuracy;
use tch::{Kind, Tensor};

/// Images per class under the exponential profile: `floor(n_max rho^(c/(C-1)))`, at least 1
/// (the reference's `int(...)`; with C = 1 the one class keeps `n_max`).
pub fn long_tail_counts(n_max: i64, classes: i64, rho: f64) -> Vec<i64> {
    (0..classes)
        .map(|c| {
            let e = if classes > 1 {
                c as f64 / (classes - 1) as f64
            } else {
                0.0
            };
            ((n_max as f64 * rho.powf(e)).floor() as i64).max(1)
        })
        .collect()
}

/// `set` with class `c` cut to its first `long_tail_counts(..)[c]` images (file order kept).
/// `rho = 1` returns the set as it is.
pub fn long_tail(set: &ImageSet, rho: f64) -> ImageSet {
    let labels = Vec::<i64>::try_from(&set.labels).unwrap_or_default();
    let mut per_class = vec![0i64; set.classes as usize];
    for &l in &labels {
        per_class[l as usize] += 1;
    }
    let n_max = per_class.iter().copied().max().unwrap_or(0);
    if rho >= 1.0 || n_max == 0 {
        return ImageSet {
            images: set.images.shallow_clone(),
            labels: set.labels.shallow_clone(),
            classes: set.classes,
        };
    }
    let keep = long_tail_counts(n_max, set.classes, rho);
    let mut taken = vec![0i64; set.classes as usize];
    let idx: Vec<i64> = labels
        .iter()
        .enumerate()
        .filter_map(|(i, &l)| {
            let t = &mut taken[l as usize];
            *t += 1;
            (*t <= keep[l as usize]).then_some(i as i64)
        })
        .collect();
    let idx = Tensor::from_slice(&idx);
    ImageSet {
        images: set.images.index_select(0, &idx),
        labels: set.labels.index_select(0, &idx),
        classes: set.classes,
    }
}

/// Many / medium / few-shot accuracy: the mean per-class accuracy (`acc`, None for a class
/// without test samples) over the classes of each group, grouped by training images
/// `train_counts`.
pub fn shot_accuracy(
    train_counts: &[i64],
    acc: &[Option<f64>],
    many_above: i64,
    few_below: i64,
) -> ShotAccuracy {
    let mut groups: [Vec<f64>; 3] = Default::default();
    for (&n, a) in train_counts.iter().zip(acc) {
        let g = if n > many_above {
            0
        } else if n < few_below {
            2
        } else {
            1
        };
        if let Some(a) = a {
            groups[g].push(*a);
        }
    }
    let mean = |v: &Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    ShotAccuracy {
        many_above,
        few_below,
        many: mean(&groups[0]),
        medium: mean(&groups[1]),
        few: mean(&groups[2]),
        many_classes: groups[0].len(),
        medium_classes: groups[1].len(),
        few_classes: groups[2].len(),
    }
}

/// Class counts of labels `[S]` in `0..classes`.
pub fn class_counts(labels: &Tensor, classes: i64) -> Vec<i64> {
    Vec::<i64>::try_from(
        &labels
            .to_kind(Kind::Int64)
            .bincount::<Tensor>(None, classes),
    )
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// The CIFAR-10-LT profile at rho = 0.01 (LDAM-DRW's `get_img_num_per_cls` with
    /// img_max 5000): 5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50.
    #[test]
    fn counts_match_the_cifar_lt_profile() {
        assert_eq!(
            long_tail_counts(5000, 10, 0.01),
            vec![5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
        );
        let c100 = long_tail_counts(500, 100, 0.01);
        assert_eq!((c100[0], c100[50], c100[99]), (500, 48, 5));
        assert_eq!(c100.iter().sum::<i64>(), 10847);
        assert_eq!(long_tail_counts(6000, 10, 1.0), vec![6000; 10]);
    }

    #[test]
    fn long_tail_keeps_the_first_images_of_each_class() {
        // 3 classes round-robin, 4 images each; rho 0.25: 4, 2, 1.
        let labels = Tensor::arange(3, (Kind::Int64, Device::Cpu)).repeat([4]);
        let set = ImageSet {
            images: Tensor::arange(12, (Kind::Uint8, Device::Cpu)).view([12, 1, 1, 1]),
            labels,
            classes: 3,
        };
        let lt = long_tail(&set, 0.25);
        assert_eq!(class_counts(&lt.labels, 3), vec![4, 2, 1]);
        let kept = Vec::<u8>::try_from(lt.images.flatten(0, -1)).unwrap();
        assert_eq!(kept, vec![0, 1, 2, 3, 4, 6, 9]);
        assert_eq!(long_tail(&set, 1.0).labels.size(), [12]);
    }

    #[test]
    fn shot_groups() {
        let counts = [500, 150, 100, 50, 20, 19, 5];
        let acc = [
            Some(0.9),
            Some(0.8),
            Some(0.6),
            Some(0.4),
            None,
            Some(0.2),
            Some(0.0),
        ];
        let s = shot_accuracy(&counts, &acc, 100, 20);
        assert_eq!((s.many_classes, s.medium_classes, s.few_classes), (2, 2, 2));
        assert!((s.many.unwrap() - 0.85).abs() < 1e-12);
        assert!((s.medium.unwrap() - 0.5).abs() < 1e-12);
        assert!((s.few.unwrap() - 0.1).abs() < 1e-12);
        let s = shot_accuracy(&[10, 10], &[Some(1.0), Some(0.0)], 100, 5);
        assert_eq!((s.many, s.few, s.medium), (None, None, Some(0.5)));
    }
}
