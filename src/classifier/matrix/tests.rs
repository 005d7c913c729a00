use super::*;

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

fn eye(n: i64) -> Tensor {
    Tensor::eye(n, (Kind::Float, Device::Cpu))
}

fn assert_unit_rows(q: &Tensor) {
    let norms = q.square().sum_dim_intlist(1, false, Kind::Float);
    assert!(max_abs(&(norms - 1.0)) < 1e-5, "rows are not unit norm");
}

#[test]
fn classifier_orthogonal_rows_when_c_le_n() {
    for (c, n) in [(10, 32), (32, 32), (1, 5)] {
        let m = FixedMatrix::orthogonal(c, n, 7).unwrap();
        let q = m.dense();
        assert_eq!(q.size(), vec![c, n]);
        assert!(!q.requires_grad());
        assert!(max_abs(&(q.matmul(&q.tr()) - eye(c))) < 1e-5);
    }
}

#[test]
fn classifier_orthogonal_columns_when_c_gt_n() {
    let (c, n) = (200, 16);
    let m = FixedMatrix::orthogonal(c, n, 7).unwrap();
    let q = m.dense();
    assert_eq!(q.size(), vec![c, n]);
    assert_unit_rows(&q);
    // Undo the row scaling: the QR factor had orthonormal columns. Rebuild it here.
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let a = gaussian(c, n, &mut rng);
    let raw = orthonormal_columns(&a); // Cholesky QR path (200 >= 4 * 16)
    assert!(max_abs(&(&raw - householder_q(&a))) < 1e-12);
    let raw = raw.to_kind(Kind::Float);
    assert!(max_abs(&(raw.tr().matmul(&raw) - eye(n))) < 1e-5);
    assert!(max_abs(&(unit_rows(raw.copy()) - &q)) < 1e-5);
    // Rows are distinct directions.
    let gram = q.matmul(&q.tr()) - eye(c) * 2.0;
    assert!(gram.max().double_value(&[]) < 0.999);
}

#[test]
fn classifier_orthogonal_reproducible_by_seed() {
    let a = FixedMatrix::orthogonal(50, 8, 1).unwrap().dense();
    let b = FixedMatrix::orthogonal(50, 8, 1).unwrap().dense();
    let c = FixedMatrix::orthogonal(50, 8, 2).unwrap().dense();
    assert!(a.equal(&b));
    assert!(!a.equal(&c));
}

/// Checkpoints store only the spec and rebuild `Q` from it, so `orthogonal` must keep
/// giving the same bits. SHA-256 of the f32 little-endian row-major bytes, recorded at
/// 7ae978b, before the Cholesky QR and the Gaussian sampler were shared with PMI
/// (x86_64, libtorch 2.11 CPU, AMD EPYC with AVX-512). libtorch's
/// BLAS/LAPACK kernels are chosen by CPU, so on another CPU first check whether the
/// parent commits give these hashes there: if not, the pin is about the machine, and
/// checkpoints do not carry over bit for bit between the two machines either.
#[test]
fn classifier_orthogonal_bits_are_pinned() {
    for (c, n, seed, want) in [
        // Tall: Cholesky QR (1000 >= 4 * 64), then unit rows.
        (
            1000,
            64,
            7,
            "7e6da60e34a57b153abf9e178079e4cf6f2d06d00bdc210d684e503a0b5aed15",
        ),
        // C <= N: Cholesky QR of the N x C Gaussian, transposed.
        (
            64,
            1000,
            7,
            "31531f744504daf979c3a69909d7577395842e488593ddb9511bcff626d2d0a0",
        ),
        // Not tall enough for Cholesky QR (30 < 4 * 8): Householder with fixed signs.
        (
            30,
            8,
            4,
            "b93c95bc0b9390a21c14b28cfab187774d7d2fcde6ed00801acddb597ec7aeaa",
        ),
    ] {
        let q = FixedMatrix::orthogonal(c, n, seed)
            .unwrap()
            .dense()
            .contiguous();
        let mut v = vec![0f32; (c * n) as usize];
        let len = v.len();
        q.copy_data(&mut v, len);
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let got = crate::fsutil::sha256_bytes(&bytes);
        assert_eq!(got, want, "orthogonal({c}, {n}, {seed}) changed");
    }
}

#[test]
fn classifier_simplex_gram() {
    for (c, n) in [(2, 1), (10, 9), (10, 32), (5, 4)] {
        let q = FixedMatrix::simplex(c, n).unwrap().dense();
        assert_eq!(q.size(), vec![c, n]);
        let gram = q.matmul(&q.tr());
        let off = -1.0 / (c - 1) as f64;
        let want = eye(c) * (1.0 - off) + off;
        assert!(max_abs(&(gram - want)) < 1e-6, "{c}x{n}");
    }
    let err = FixedMatrix::simplex(11, 9).unwrap_err().to_string();
    assert!(err.contains("C <= N + 1"), "{err}");
    assert!(FixedMatrix::simplex(1, 9).is_err());
}

#[test]
fn classifier_hadamard_via_matrix() {
    let m = FixedMatrix::hadamard(300, 48, 1).unwrap();
    let q = m.dense();
    assert_unit_rows(&q);
    let x = Tensor::randn([4, 48], (Kind::Float, Device::Cpu));
    let diff = max_abs(&(m.project(&x) - x.matmul(&q.tr())));
    assert!(diff < 1e-4, "{diff}");
    let ids = Tensor::from_slice(&[0i64, 299, 64, 5]).view([2, 2]);
    let rows = m.rows_for(&ids);
    assert_eq!(rows.size(), vec![2, 2, 48]);
    assert!(rows.get(1).get(0).equal(&q.get(64)));
}

#[test]
fn classifier_rows_for_and_project_dense() {
    let m = FixedMatrix::orthogonal(20, 8, 3).unwrap();
    let q = m.dense();
    let ids = Tensor::from_slice(&[3i64, 0, 19]);
    let rows = m.rows_for(&ids);
    assert!(rows.get(2).equal(&q.get(19)));
    let x = Tensor::randn([2, 3, 8], (Kind::Double, Device::Cpu));
    let y = m.project(&x);
    assert_eq!(y.size(), vec![2, 3, 20]);
    assert_eq!(y.kind(), Kind::Double);
}

#[test]
fn classifier_spec_round_trip_and_build() {
    for m in [
        FixedMatrix::orthogonal(30, 8, 4).unwrap(),
        FixedMatrix::hadamard(30, 8, 4).unwrap(),
        FixedMatrix::simplex(9, 8).unwrap(),
    ] {
        let json = serde_json::to_string(m.spec()).unwrap();
        let spec: FixedSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(&spec, m.spec());
        let again = FixedMatrix::build(&spec, None).unwrap();
        assert!(again.dense().equal(&m.dense()));
        let copy = m.clone().to_device(Device::Cpu);
        assert!(copy.dense().equal(&m.dense()) && copy.spec() == m.spec());
    }
    let spec: FixedSpec =
        toml::from_str("kind = \"hadamard\"\nrows = 5\ncols = 4\nseed = 2").unwrap();
    assert_eq!(spec.kind, FixedKind::Hadamard);
    assert!(FixedMatrix::orthogonal(0, 8, 0).is_err());
}

#[test]
fn classifier_hadamard_dense_and_fast_agree() {
    for (c, n) in [(10, 64), (100, 342), (70, 24)] {
        let a = FixedMatrix::hadamard_as(c, n, 3, true).unwrap();
        let b = FixedMatrix::hadamard_as(c, n, 3, false).unwrap();
        assert!(a.dense().equal(&b.dense()));
        let x = Tensor::randn([5, n], (Kind::Float, Device::Cpu));
        let d = (a.project(&x) - b.project(&x))
            .abs()
            .max()
            .double_value(&[]);
        assert!(d < 1e-5, "{c} x {n}: {d}");
        assert_eq!(a.spec(), b.spec());
    }
}
