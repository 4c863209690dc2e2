//! Bad input and faults, as a user meets them through `cnn`: every fatal case is one clear line
//! naming the file and the reason, a non-zero exit, no panic and no run folder that looks
//! finished; a full disk and kills lose nothing that was saved.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_clean_failure, assert_failure_after_warnings, assert_success, cnn};

fn scratch(tag: &str) -> cnn_testkit::Scratch {
    let dir = cnn_testkit::scratch("hardening", tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/photos")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `cnn train` that must fail: returns the error line, and checks that `out` holds no weights.
fn train_fails(args: &[&str], out: &Path) -> String {
    let mut all = vec!["--device", "flex", "train", "--out", s(out)];
    if !args.contains(&"--epochs") {
        all.extend(["--epochs", "1"]);
    }
    all.extend(args);
    let msg = assert_failure_after_warnings(&cnn(&all));
    assert!(
        !out.join("model.bpk").exists(),
        "{}: weights written despite {msg}",
        out.display()
    );
    msg
}

fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// A small, valid MNIST layout in `root/mnist` (20 training and 10 test images).
fn mnist_layout(root: &Path) -> PathBuf {
    let dir = root.join("mnist");
    std::fs::create_dir_all(&dir).unwrap();
    let labels = |n: usize| (0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>();
    std::fs::write(
        dir.join("train-images-idx3-ubyte"),
        idx(0x803, &[20, 28, 28], &[7; 20 * 784]),
    )
    .unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx(0x801, &[20], &labels(20))).unwrap();
    std::fs::write(
        dir.join("t10k-images-idx3-ubyte"),
        idx(0x803, &[10, 28, 28], &[7; 10 * 784]),
    )
    .unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx(0x801, &[10], &labels(10))).unwrap();
    dir
}

#[test]
fn broken_idx_files_are_clear_errors() {
    let root = scratch("idx");
    let labels_file = mnist_layout(&root).join("train-labels-idx1-ubyte");
    let good = std::fs::read(&labels_file).unwrap();
    let gz = |bytes: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    let cut_gz = {
        let z = gz(&good);
        z[..z.len() / 2].to_vec()
    };
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("wrong magic", b"PK\x03\x04 not idx at all".to_vec(), "not an IDX file"),
        (
            "header promises more",
            idx(0x801, &[40], &[1; 20]),
            "header promises 40 bytes",
        ),
        ("label count", idx(0x801, &[19], &[1; 19]), "20 images but 19 labels"),
        (
            "label range",
            idx(0x801, &[20], &[200; 20]),
            "label 200 at index 0 is out of range",
        ),
        ("truncated gz", cut_gz, "corrupt or truncated gzip"),
    ];
    for (i, (case, bytes, wanted)) in cases.into_iter().enumerate() {
        let gzipped = case == "truncated gz";
        let path = if gzipped {
            labels_file.with_extension("gz")
        } else {
            labels_file.clone()
        };
        if gzipped {
            std::fs::remove_file(&labels_file).unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
        let out = root.join(format!("run{i}"));
        let msg = train_fails(&["--dataset", "mnist", "--data-dir", s(&root)], &out);
        assert!(
            msg.contains("train-labels-idx1-ubyte") && msg.contains(wanted),
            "{case}: {msg}"
        );
        assert!(!out.exists(), "{case}: a run folder was created");
        if !gzipped {
            std::fs::write(&labels_file, &good).unwrap();
        }
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn broken_cifar_files_are_clear_errors() {
    let root = scratch("cifar");
    let dir = root.join("cifar10");
    std::fs::create_dir_all(&dir).unwrap();
    let record = |label: u8| {
        let mut r = vec![label];
        r.extend(std::iter::repeat_n(9u8, 3072));
        r
    };
    let batch: Vec<u8> = (0..4).flat_map(|i| record(i % 10)).collect();
    for i in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), &batch).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), &batch).unwrap();
    std::fs::write(
        dir.join("batches.meta.txt"),
        (0..10).map(|i| format!("c{i}\n")).collect::<String>(),
    )
    .unwrap();
    let cut = &batch[..batch.len() - 100];
    let bad_label: Vec<u8> = (0..4).flat_map(|_| record(42)).collect();
    for (i, (bytes, wanted)) in [(cut, "not a whole number of"), (&bad_label[..], "out of range")]
        .into_iter()
        .enumerate()
    {
        std::fs::write(dir.join("data_batch_3.bin"), bytes).unwrap();
        let out = root.join(format!("run{i}"));
        let msg = train_fails(
            &["--dataset", "cifar10", "--data-dir", s(&root), "--model", "resnet20"],
            &out,
        );
        assert!(msg.contains("data_batch_3.bin") && msg.contains(wanted), "{msg}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// Odd but usable images train (converted, or skipped with a warning that names them); a
/// truncated JPEG stops the run with its name.
#[test]
fn image_folders_convert_skip_or_refuse_with_the_file_named() {
    let root = scratch("folder");
    let data = root.join("data");
    for class in ["cat", "rocket"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
    }
    let cat = photos().join("chelsea.png");
    for i in 0..5 {
        std::fs::copy(&cat, data.join(format!("cat/{i}.png"))).unwrap();
        std::fs::copy(photos().join("rocket.jpg"), data.join(format!("rocket/{i}.jpg"))).unwrap();
    }
    // Converted: grayscale and 16-bit RGBA pictures in an RGB folder, a non-UTF-8 name.
    image::GrayImage::from_pixel(40, 30, image::Luma([90]))
        .save(data.join("cat/gray.png"))
        .unwrap();
    image::ImageBuffer::<image::Rgba<u16>, Vec<u16>>::from_pixel(20, 20, image::Rgba([60000, 0, 0, 65535]))
        .save(data.join("rocket/rgba16.png"))
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9 latin-1.png");
        std::fs::copy(&cat, data.join("cat").join(name)).unwrap();
    }
    // Skipped with a reason: empty, text named .png, a GIF, a 30000x30000 header.
    std::fs::write(data.join("cat/zero.png"), b"").unwrap();
    std::fs::write(data.join("cat/notes.png"), b"just text").unwrap();
    std::fs::write(data.join("rocket/anim.gif"), b"GIF89a\x01\x00\x01\x00").unwrap();
    let mut bomb = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    bomb.extend_from_slice(&30_000u32.to_be_bytes());
    bomb.extend_from_slice(&30_000u32.to_be_bytes());
    bomb.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    std::fs::write(data.join("rocket/bomb.png"), bomb).unwrap();

    let out = root.join("ok");
    let run = cnn(&[
        "--device",
        "flex",
        "train",
        "--dataset",
        s(&data),
        "--model",
        "resnet20",
        "--epochs",
        "1",
        "--valid-split",
        "0",
        "--out",
        s(&out),
    ]);
    assert_success(&run);
    let warnings = String::from_utf8_lossy(&run.stderr);
    assert!(
        warnings.contains("warning: skipped 4 unreadable image file(s)"),
        "{warnings}"
    );
    assert!(out.join("model.bpk").is_file());

    // A truncated JPEG passes the header check but stops the run at decoding, named.
    let bytes = std::fs::read(photos().join("rocket.jpg")).unwrap();
    std::fs::write(data.join("rocket/3.jpg"), &bytes[..bytes.len() / 3]).unwrap();
    let msg = train_fails(
        &["--dataset", s(&data), "--model", "resnet20", "--valid-split", "0"],
        &root.join("cut"),
    );
    assert!(msg.contains("3.jpg") && msg.contains("truncated JPEG"), "{msg}");

    // An empty class folder is refused before anything is written.
    std::fs::create_dir_all(data.join("ufo")).unwrap();
    let msg = train_fails(&["--dataset", s(&data)], &root.join("empty"));
    assert!(msg.contains("class folder 'ufo' holds no readable image"), "{msg}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// Each `(model, weights file, expected message)` fails with that message, before any run folder
/// exists (nothing looks like a started run); then `root` is removed.
fn weights_fail(root: &Path, cases: &[(&str, &PathBuf, &str)]) {
    for (i, (model, file, wanted)) in cases.iter().enumerate() {
        let out = root.join(format!("run{i}"));
        let msg = train_fails(&["--model", model, "--weights", s(file)], &out);
        assert!(msg.contains(wanted), "{}: {msg}", file.display());
        assert!(!out.exists(), "{}: a run folder was created", file.display());
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn bad_weight_files_are_clear_errors() {
    let root = scratch("weights");
    // A zip-format .pth whose pickle is a list, and a legacy pickle of a dict without tensors.
    let not_state_dict = root.join("list.pth");
    {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&not_state_dict).unwrap());
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", options).unwrap();
        // pickle protocol 2: [1, 2]
        zip.write_all(b"\x80\x02]q\x00(K\x01K\x02e.").unwrap();
        zip.start_file("archive/version", options).unwrap();
        zip.write_all(b"3\n").unwrap();
        zip.finish().unwrap();
    }
    // A safetensors file with LeNet-5's first tensor stored as int64.
    let int64 = root.join("int64.safetensors");
    {
        let header = br#"{"conv1.weight":{"dtype":"I64","shape":[6,1,5,5],"data_offsets":[0,1200]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend(std::iter::repeat_n(0u8, 1200));
        std::fs::write(&int64, bytes).unwrap();
    }
    let cases = [
        ("lenet5", &not_state_dict, "Expected a dictionary"),
        ("lenet5", &int64, "I64"),
    ];
    weights_fail(&root, &cases);
}

#[test]
fn torchvision_weights_cut_short_or_of_another_architecture_are_clear_errors() {
    let Some(fixtures) = cnn_testkit::torchvision_fixtures() else {
        return;
    };
    let root = scratch("weights-tv");
    let resnet18 = fixtures.join("resnet18.pth");
    let truncated = root.join("truncated.pth");
    std::fs::write(&truncated, &std::fs::read(&resnet18).unwrap()[..100_000]).unwrap();
    let cases = [
        (
            "lenet5",
            &resnet18,
            "tensor 'conv1.weight' has shape [64, 3, 7, 7] in the file but [6, 1, 5, 5] in the model; 9 of the model's tensors are not in the file, e.g. 'conv1.bias', 'conv2.bias' (is it the weights of another architecture?)",
        ),
        ("resnet18", &truncated, "truncated.pth: cannot read the weights"),
    ];
    weights_fail(&root, &cases);
}

#[test]
fn bad_names_and_settings_are_clear_errors() {
    let root = scratch("flags");
    let aug = root.join("aug.toml");
    std::fs::write(&aug, "[[ops]]\nop = \"horizontal_flipp\"\np = 0.5\n").unwrap();
    let cases: [(&[&str], &str); 9] = [
        (&["--model", "resnet19"], "did you mean 'resnet18'"),
        (&["--dataset", "fashion_mnist"], "did you mean 'fashion-mnist'"),
        (&["--augment", s(&aug)], "unknown variant `horizontal_flipp`"),
        (&["--augment", "imagenett"], "neither an augmentation preset"),
        (&["--lr", "-0.1"], "--lr must be a positive number"),
        (&["--lr", "1e9"], "--lr 1000000000 is absurd"),
        (&["--epochs", "100000000"], "--epochs 100000000 is absurd"),
        (&["--batch-size", "10000000"], "--batch-size 10000000 is absurd"),
        (&["--weight-decay", "-1"], "--weight-decay must be 0 or more"),
    ];
    for (i, (args, wanted)) in cases.into_iter().enumerate() {
        let out = root.join(format!("run{i}"));
        let msg = train_fails(args, &out);
        assert!(msg.contains(wanted), "{args:?}: {msg}");
        assert!(!out.exists(), "{args:?}: a run folder was created");
    }

    // --resume on a folder that another model trained.
    let run = root.join("lenet");
    assert_success(&cnn(&[
        "--device",
        "flex",
        "train",
        "--epochs",
        "1",
        "--subset",
        "200",
        "--out",
        s(&run),
    ]));
    let msg = assert_clean_failure(&cnn(&[
        "train",
        "--resume",
        s(&run),
        "--model",
        "resnet20",
        "--epochs",
        "2",
    ]));
    assert!(msg.contains("changes --model resnet20 (the run's: lenet5)"), "{msg}");
    let config = run.join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"lenet5\"", "\"resnet20\"")).unwrap();
    let msg = assert_clean_failure(&cnn(&[
        "--device",
        "flex",
        "train",
        "--resume",
        s(&run),
        "--epochs",
        "2",
    ]));
    assert!(msg.contains("does not fit the model") && msg.len() < 600, "{msg}");
    std::fs::remove_dir_all(&root).unwrap();
}

/// A full disk (a 3 MB tmpfs in a private mount namespace) while the second epoch's checkpoint is
/// written: a clear error naming the file, the first checkpoint intact and resumable.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_during_a_checkpoint_loses_nothing() {
    let root = scratch("full");
    let cnn_bin = env!("CARGO_BIN_EXE_cnn");
    std::fs::create_dir_all(root.join("disk")).unwrap();
    let script = format!(
        r#"set -u
mount -t tmpfs -o size=3m tmpfs "$D" || exit 90
"$CNN" --device flex train --epochs 1 --subset 200 --out "$D/run" > /dev/null || exit 91
dd if=/dev/zero of="$D/filler" bs=1k 2> /dev/null
rm -f "$D/filler"; dd if=/dev/zero of="$D/filler" bs=1k count=$(( $(df -k --output=avail "$D" | tail -1) - 150 )) 2> /dev/null
"$CNN" --device flex train --resume "$D/run" --epochs 2 > /dev/null 2> "$R/full.err"; echo "exit $?" > "$R/full.status"
ls -a "$D/run" > "$R/after.ls"
rm "$D/filler"
"$CNN" --device flex train --resume "$D/run" --epochs 2 > "$R/resumed.out" 2>&1; echo "exit $?" > "$R/resumed.status"
"#
    );
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("D", root.join("disk"))
        .env("R", root.as_os_str())
        .env("CNN", cnn_bin)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the full-disk script failed with {status} (90: cannot mount a tmpfs; 91: first epoch)"
    );
    let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_default();
    let err = read("full.err");
    assert_eq!(read("full.status").trim(), "exit 1", "{err}");
    assert!(
        err.starts_with("error: ") && err.trim_end().lines().count() == 1 && err.contains("No space left on device"),
        "{err}"
    );
    let listing = read("after.ls");
    assert!(
        listing.contains("checkpoint-0001") && !listing.contains(".tmp"),
        "{listing}"
    );
    assert_eq!(read("resumed.status").trim(), "exit 0", "{}", read("resumed.out"));
    assert!(read("resumed.out").contains("epoch   2/2"), "{}", read("resumed.out"));
    std::fs::remove_dir_all(&root).unwrap();
}

/// The reference run the interrupted ones must end like.
fn train_uninterrupted(out: &Path, settings: &[&str]) {
    let mut args = vec!["--device", "flex", "train", "--out", s(out)];
    args.extend(settings);
    assert_success(&cnn(&args));
}

fn run_weights(dir: &Path) -> Vec<Vec<f32>> {
    let folder = cnn_trainer::RunFolder::open(dir).unwrap();
    cnn_trainer::run::checkpoint::parameter_values(&folder.load_model(&burn::tensor::Device::flex()).unwrap())
}

/// SIGKILL at pseudo-random points of the run — after a training batch, or in the middle of
/// writing a checkpoint — resuming after each, until the run finishes: each kill loses at most
/// the epoch in progress, and the final weights equal an uninterrupted run's. The points are
/// batches and checkpoints, not times, so the test kills at the same places however busy the
/// machine is (the fault points exist only in `fault-injection` builds).
#[test]
fn random_kills_then_resumes_end_exactly_like_an_uninterrupted_run() {
    assert!(
        cfg!(feature = "fault-injection"),
        "build the tests with --features fault-injection (cargo xtask test does)"
    );
    let root = scratch("kills");
    let (straight, killed) = (root.join("straight"), root.join("killed"));
    const EPOCHS: usize = 6;
    // 900 training images (10% of 1,000 held out) in batches of 32: 29 batches per epoch.
    let settings = ["--epochs", "6", "--subset", "1000", "--optimizer", "sgd", "--lr", "0.05"];
    train_uninterrupted(&straight, &settings);
    // xorshift: the same kill points every time.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n) as usize
    };
    let mut done = 0; // epochs in the newest checkpoint
    let mut kills = 0;
    while done < EPOCHS - 1 {
        assert!(kills < 20, "the kill points make no progress");
        // A point in the next two epochs: after one of its batches, or inside its checkpoint.
        let epoch = (done + 1 + next(2)).min(EPOCHS);
        let (var, value) = if next(3) == 0 {
            ("CNN_FAULT_KILL_IN_CHECKPOINT", epoch.to_string())
        } else {
            ("CNN_FAULT_KILL_AT", format!("{epoch}:{}", 1 + next(29)))
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cnn"));
        cmd.args(["--device", "flex", "train"]).env(var, &value);
        if killed.join("checkpoint.json").exists() {
            cmd.args(["--resume", s(&killed)]);
        } else {
            cmd.args(["--out", s(&killed)]).args(settings);
        }
        let out = cmd.output().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            let said = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.signal(), Some(9), "{var}={value} did not kill: {}\n{said}", out.status);
        }
        kills += 1;
        let saved = cnn_trainer::run::checkpoint::info(&killed).map_or(0, |i| i.epoch);
        assert_eq!(saved, epoch - 1, "after {var}={value} the newest checkpoint is epoch {saved}");
        done = saved;
    }
    assert_success(&cnn(&["--device", "flex", "train", "--resume", s(&killed)]));
    assert!(killed.join("model.bpk").is_file(), "never finished");
    assert!(kills >= 3, "only {kills} kills");
    assert_eq!(
        run_weights(&straight),
        run_weights(&killed),
        "weights differ after {kills} kills"
    );
}

/// A SIGKILL in the middle of writing epoch 2's checkpoint (weights written, optimiser state
/// not): epoch 1's checkpoint stays the current one, and resuming ends like an uninterrupted run.
#[test]
fn a_kill_inside_a_checkpoint_write_keeps_the_previous_checkpoint() {
    assert!(
        cfg!(feature = "fault-injection"),
        "build the tests with --features fault-injection (cargo xtask test does)"
    );
    let root = scratch("ckpt-kill");
    let (straight, killed) = (root.join("straight"), root.join("killed"));
    let settings = ["--epochs", "3", "--subset", "300", "--optimizer", "sgd", "--lr", "0.05"];
    train_uninterrupted(&straight, &settings);
    let status = Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(["--device", "flex", "train", "--out", s(&killed)])
        .args(settings)
        .env("CNN_FAULT_KILL_IN_CHECKPOINT", "2")
        .output()
        .unwrap()
        .status;
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "the fault point did not kill: {status}");
    }
    assert_eq!(cnn_trainer::run::checkpoint::info(&killed).unwrap().epoch, 1);
    assert!(
        killed.join("checkpoint-0002.tmp/model.bpk").is_file(),
        "the kill did not land mid-write"
    );
    assert!(!killed.join("checkpoint-0002.tmp/optimizer.bpk").exists());
    let stdout = assert_success(&cnn(&["--device", "flex", "train", "--resume", s(&killed)]));
    assert!(
        stdout.contains("epoch   2/3") && !stdout.contains("epoch   1/3"),
        "{stdout}"
    );
    assert_eq!(run_weights(&straight), run_weights(&killed));
    assert!(
        !killed.join("checkpoint-0002.tmp").exists(),
        "leftover of the killed write"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// A download killed halfway leaves no file under the final name, only its hidden part file,
/// which the next download removes; a bad download then leaves nothing at all.
#[test]
fn a_killed_download_leaves_nothing_that_looks_complete() {
    use std::io::{Read, Write};
    let root = scratch("dl-kill");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Serves every request with a 20 MB body, slowly: 64 KB every 20 ms.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut request = [0u8; 2048];
                let _ = stream.read(&mut request);
                let size = 20 << 20;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
                );
                for _ in 0..size / 65536 {
                    if stream.write_all(&[0x5a; 65536]).is_err() {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            });
        }
    });
    let mirror = format!("http://127.0.0.1:{port}");
    let dir = root.join("mnist");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cnn"))
        .args(["download", "mnist", "--mirror", &mirror, "--data-dir", s(&root)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let parts = || -> Vec<String> {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let started = std::time::Instant::now();
    while !parts().iter().any(|n| n.contains(".part-")) || started.elapsed().as_millis() < 500 {
        assert!(started.elapsed().as_secs() < 60, "the download never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let left = parts();
    assert!(
        left.iter().all(|n| n.starts_with('.') && n.contains(".part-")),
        "{left:?}"
    );
    assert!(!left.is_empty());

    // Next time: the stale part file goes, and a body with the wrong checksum is refused.
    let out = cnn(&["download", "mnist", "--mirror", &mirror, "--data-dir", s(&root)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let msg = stderr.trim_end().lines().last().unwrap_or_default();
    assert!(!out.status.success() && !stderr.contains("panicked"), "{stderr}");
    assert!(
        msg.starts_with("error: ") && msg.contains("train-images-idx3-ubyte.gz"),
        "{stderr}"
    );
    assert!(parts().is_empty(), "left behind: {:?}", parts());
    std::fs::remove_dir_all(&root).unwrap();
}
