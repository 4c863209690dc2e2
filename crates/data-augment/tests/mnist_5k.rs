//! The embedded MNIST-5k split: sizes, stratification and pixels checked against the source CSV.

use cnn_data_augment::embedded::mnist_5k;

#[test]
fn split_is_4000_train_1000_test_stratified() {
    let (train, test) = mnist_5k().unwrap();
    assert_eq!((train.len(), test.len()), (4000, 1000));
    assert_eq!((train.height(), train.width(), train.channels()), (28, 28, 1));
    assert_eq!(train.class_counts(), vec![400; 10]);
    assert_eq!(test.class_counts(), vec![100; 10]);
    // The source rows are sorted by class; the split must be shuffled.
    let first_hundred: std::collections::HashSet<_> = train.labels()[..100].iter().collect();
    assert!(first_hundred.len() >= 8, "training labels look unshuffled");
}

#[test]
fn pixels_match_the_source_rows() {
    let (train, test) = mnist_5k().unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../datasets/mnist-5k/source-rows.json");
    let map: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root).unwrap()).unwrap();
    let rows = |k: &str| -> Vec<u64> { map[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect() };
    let (train_rows, test_rows) = (rows("train"), rows("test"));
    assert_eq!(train_rows.len() + test_rows.len(), 5000);

    let fixture = include_str!("fixtures/mnist5k_spot_rows.txt");
    let mut checked = 0;
    for line in fixture.lines().filter(|l| !l.starts_with('#')) {
        let (row, csv) = line.split_once(':').unwrap();
        let row: u64 = row.parse().unwrap();
        let values: Vec<u8> = csv.split(',').map(|v| v.trim().parse().unwrap()).collect();
        let (pixels, label) = (&values[..784], values[784] as usize);
        let (set, pos) = match train_rows.iter().position(|&r| r == row) {
            Some(p) => (&train, p),
            None => (
                &test,
                test_rows.iter().position(|&r| r == row).expect("row in neither split"),
            ),
        };
        assert_eq!(set.image(pos), pixels, "source row {row}");
        assert_eq!(set.label(pos), label, "source row {row}");
        assert!(pixels.iter().any(|&p| p > 0));
        checked += 1;
    }
    assert_eq!(checked, 5);
}
