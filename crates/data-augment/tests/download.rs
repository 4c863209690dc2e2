//! Downloads over a real HTTP connection (a loopback server in this test), imports of local
//! copies (Debian's Fashion-MNIST), and what is left on disk when things go wrong.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cnn_data_augment::datasets;
use cnn_data_augment::download::{
    Checksum, DatasetFiles, Download, DownloadEvent, Origin, RemoteFile, Verified, dataset_files,
};

/// What the server answers for a path.
#[derive(Clone)]
enum Reply {
    /// 200 with these bytes.
    Body(Vec<u8>),
    /// 200 announcing `len` bytes, sending only the given ones, then closing.
    CutShort(Vec<u8>, usize),
}

/// A minimal HTTP/1.1 server on 127.0.0.1; returns its base URL and a request counter.
fn serve(routes: HashMap<String, Reply>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                request.push(byte[0]);
            }
            let line = String::from_utf8_lossy(&request);
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (body, len) = match routes.get(&path) {
                Some(Reply::Body(b)) => (b.clone(), b.len()),
                Some(Reply::CutShort(b, len)) => (b.clone(), *len),
                None => {
                    let _ =
                        stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
            };
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (base, hits)
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A CIFAR-10 binary archive in miniature: the real layout, two records per batch file.
fn tiny_cifar10_archive() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("cifar-10-batches-bin/{name}"), data)
            .unwrap();
    };
    let record = |label: u8| {
        let mut r = vec![label];
        r.extend((0..3072).map(|i| (i % 251) as u8));
        r
    };
    for i in 1..=5 {
        add(&format!("data_batch_{i}.bin"), &[record(i), record(9)].concat());
    }
    add("test_batch.bin", &[record(0), record(1)].concat());
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

fn one_file(name: &str, urls: Vec<String>, md5: String, unpack_to: Option<&str>) -> DatasetFiles {
    DatasetFiles {
        name: "cifar10".into(),
        files: vec![RemoteFile {
            name: name.into(),
            urls,
            checksum: Checksum::Md5(md5),
            content_sha256: None,
            unpack_to: unpack_to.map(str::to_string),
        }],
    }
}

fn scratch(tag: &str) -> cnn_testkit::Scratch {
    let dir = cnn_testkit::scratch("download", tag);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Every entry of `dir`, hidden ones included.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn an_archive_downloads_over_http_is_checked_unpacked_and_readable() {
    let archive = tiny_cifar10_archive();
    let (base, hits) = serve(HashMap::from([("/c10.tgz".to_string(), Reply::Body(archive.clone()))]));
    let data = scratch("ok");
    let spec = one_file(
        "cifar-10-binary.tar.gz",
        vec![format!("{base}/c10.tgz")],
        md5_hex(&archive),
        Some("cifar-10-batches-bin"),
    );
    let mut events = Vec::new();
    let out = Download::new(&data)
        .run(&spec, &mut |e| events.push(e.clone()))
        .unwrap();
    assert_eq!(out[0].source, format!("{base}/c10.tgz"));
    assert_eq!(out[0].verified, Verified::Published(Checksum::Md5(md5_hex(&archive))));
    let last_bytes = events.iter().rev().find_map(|e| match e {
        DownloadEvent::Bytes { done, total, .. } => Some((*done, *total)),
        _ => None,
    });
    assert_eq!(last_bytes, Some((archive.len() as u64, Some(archive.len() as u64))));
    // Nothing temporary is left, and the readers find the data set.
    assert_eq!(
        entries(&data.join("cifar10")),
        ["cifar-10-batches-bin", "cifar-10-binary.tar.gz"]
    );
    let (train, test) = datasets::load("cifar10", &data).unwrap();
    assert_eq!((train.len(), test.len()), (10, 2));
    assert_eq!(train.labels()[..4], [1, 9, 2, 9]);

    // A second run finds the file intact and does not fetch it again.
    let before = hits.load(Ordering::SeqCst);
    let again = Download::new(&data).run(&spec, &mut |_| {}).unwrap();
    assert_eq!(again[0].source, "already present");
    assert_eq!(hits.load(Ordering::SeqCst), before);
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn a_corrupted_download_is_discarded_and_the_next_mirror_used() {
    let good = b"the real bytes of the file".to_vec();
    let mut bad = good.clone();
    bad[3] ^= 0x40;
    let (base, _) = serve(HashMap::from([
        ("/bad".to_string(), Reply::Body(bad)),
        ("/good".to_string(), Reply::Body(good.clone())),
    ]));
    let data = scratch("mirror");
    let spec = one_file(
        "f.bin",
        vec![format!("{base}/bad"), format!("{base}/good")],
        md5_hex(&good),
        None,
    );
    let mut failures = Vec::new();
    let out = Download::new(&data)
        .run(&spec, &mut |e| {
            if let DownloadEvent::Failed { source, reason, .. } = e {
                failures.push(format!("{source}: {reason}"));
            }
        })
        .unwrap();
    assert_eq!(out[0].source, format!("{base}/good"));
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].contains("/bad") && failures[0].contains("checksum mismatch"),
        "{failures:?}"
    );
    assert_eq!(std::fs::read(data.join("cifar10/f.bin")).unwrap(), good);
    assert_eq!(entries(&data.join("cifar10")), ["f.bin"]);
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn corrupted_or_cut_off_downloads_leave_no_file_behind() {
    let good = vec![7u8; 5000];
    let mut bad = good.clone();
    bad[4999] = 0;
    let (base, _) = serve(HashMap::from([
        ("/bad".to_string(), Reply::Body(bad)),
        ("/short".to_string(), Reply::CutShort(good[..2000].to_vec(), 5000)),
    ]));
    let data = scratch("corrupt");
    let spec = one_file(
        "f.bin",
        vec![format!("{base}/bad"), format!("{base}/short")],
        md5_hex(&good),
        None,
    );
    let err = Download::new(&data).run(&spec, &mut |_| {}).unwrap_err().to_string();
    assert!(
        err.contains(&format!("{base}/bad")) && err.contains("checksum mismatch"),
        "{err}"
    );
    assert!(err.contains(&format!("{base}/short")), "{err}");
    assert!(err.contains("`from`"), "{err}");
    assert!(
        entries(&data.join("cifar10")).is_empty(),
        "{:?}",
        entries(&data.join("cifar10"))
    );

    // A damaged file already in place is noticed and replaced.
    let (base, _) = serve(HashMap::from([("/good".to_string(), Reply::Body(good.clone()))]));
    std::fs::write(data.join("cifar10/f.bin"), b"half a file").unwrap();
    let spec = one_file("f.bin", vec![format!("{base}/good")], md5_hex(&good), None);
    let out = Download::new(&data).run(&spec, &mut |_| {}).unwrap();
    assert_eq!(out[0].source, format!("{base}/good"));
    assert_eq!(std::fs::read(data.join("cifar10/f.bin")).unwrap(), good);
    std::fs::remove_dir_all(&data).unwrap();
}

#[test]
fn without_network_the_error_names_the_url_and_suggests_from() {
    // A port nobody listens on: connection refused, as with no network.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/train-images-idx3-ubyte.gz");
    let data = scratch("offline");
    let spec = one_file("train-images-idx3-ubyte.gz", vec![url.clone()], "0".repeat(32), None);
    let err = Download::new(&data).run(&spec, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains(&url) && err.contains("`from` DIR"), "{err}");
    std::fs::remove_dir_all(&data).unwrap();
}

const DEBIAN_FASHION: &str = "/usr/share/datasets/fashion-mnist";

#[test]
fn debians_fashion_mnist_imports_with_from_and_passes_the_checksums() {
    assert!(
        Path::new(DEBIAN_FASHION).is_dir(),
        "{DEBIAN_FASHION} is missing: apt-get install dataset-fashion-mnist (.ci/run does)"
    );
    let data = scratch("fashion");
    let spec = dataset_files("fashion-mnist").unwrap();
    let download = Download {
        origin: Origin::Local(DEBIAN_FASHION.into()),
        ..Download::new(&data)
    };
    let out = download.run(&spec, &mut |_| {}).unwrap();
    assert_eq!(out.len(), 4);
    // Debian recompressed the gzip files: the contents' SHA-256 is what matches.
    for o in &out {
        assert!(matches!(o.verified, Verified::Contents(_)), "{o:?}");
    }
    let (train, test) = datasets::load("fashion-mnist", &data).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));

    // A damaged copy in the --from folder is refused, naming the file and both checksums.
    let bad_from = scratch("fashion-bad");
    std::fs::create_dir_all(&bad_from).unwrap();
    for o in &out {
        std::fs::copy(&o.path, bad_from.join(&o.file)).unwrap();
    }
    let victim = bad_from.join("t10k-labels-idx1-ubyte.gz");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&victim, bytes).unwrap();
    std::fs::remove_dir_all(&data).unwrap();
    let download = Download {
        origin: Origin::Local(bad_from.to_path_buf()),
        ..Download::new(&data)
    };
    let err = download.run(&spec, &mut |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("t10k-labels-idx1-ubyte.gz")
            && err.contains("checksum mismatch")
            && err.contains("bb300cfdad3c16e7a12a480ee83cd310"),
        "{err}"
    );
    assert!(!data.join("fashion-mnist/t10k-labels-idx1-ubyte.gz").exists());
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::remove_dir_all(&bad_from).unwrap();
}

#[test]
fn a_sha256_prefix_checks_a_single_local_file_given_by_path() {
    use sha2::{Digest, Sha256};
    let data = scratch("prefix");
    std::fs::create_dir_all(&data).unwrap();
    let local = data.join("my-copy.bin");
    std::fs::write(&local, b"weights").unwrap();
    let hex: String = Sha256::digest(b"weights").iter().map(|b| format!("{b:02x}")).collect();
    let spec = DatasetFiles {
        name: "weights".into(),
        files: vec![RemoteFile {
            name: format!("model-{}.pth", &hex[..8]),
            urls: vec![],
            checksum: Checksum::Sha256Prefix(hex[..8].to_string()),
            content_sha256: None,
            unpack_to: None,
        }],
    };
    let download = Download {
        origin: Origin::Local(local.clone()),
        ..Download::new(data.join("cache"))
    };
    let out = download.run(&spec, &mut |_| {}).unwrap();
    assert_eq!(
        out[0].verified,
        Verified::Published(Checksum::Sha256Prefix(hex[..8].to_string()))
    );
    assert_eq!(std::fs::read(&out[0].path).unwrap(), b"weights");
    std::fs::write(&local, b"other").unwrap();
    let _ = std::fs::remove_file(&out[0].path);
    let err = download.run(&spec, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch") && err.contains(&hex[..8]), "{err}");
    std::fs::remove_dir_all(&data).unwrap();
}
