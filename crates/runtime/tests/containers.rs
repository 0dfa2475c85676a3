//! Real containers (root required): life cycle, logs, exec, re-adoption, pods.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bulwark_runtime::{ContainerConfig, ContainerStatus, ImageStore, Runtime};
use common::fixture::{Fixture, cgroup_file, eventually, lines};

#[test]
fn runs_a_command_and_records_output_and_exit_code() {
    let f = Fixture::new();
    let (status, log) = f.run(f.config("echo hello; echo oops >&2; exit 3"));
    assert_eq!(status.code, 3);
    assert_eq!(status.reason, "Error");
    assert!(
        !status.started_at.is_empty() && status.started_at <= status.finished_at,
        "{status:?}"
    );
    // Each stream keeps its order; the two streams interleave as they are read.
    let mut got = lines(&log);
    got.sort();
    assert_eq!(got, ["stderr: oops", "stdout: hello"]);
    let first = log
        .lines()
        .find(|l| l.contains(" stdout "))
        .expect("a stdout line");
    assert!(first.ends_with(" stdout F hello"), "{first}");
    assert!(
        first.as_bytes()[..30]
            .iter()
            .filter(|&&b| b == b'-')
            .count()
            == 2,
        "{first}"
    );
}

#[test]
fn a_new_runtime_readopts_a_running_container() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = Arc::new(ImageStore::open(dir.path().join("images")).expect("store"));
    images
        .import_rootfs(&common::busybox_rootfs_tar(dir.path()), "busybox")
        .expect("import");
    let shim = env!("CARGO_BIN_EXE_bulwark-runtime-shim");
    let state = dir.path().join("state");
    let parent = common::unique("bulwark-test");
    let cfg = ContainerConfig {
        id: common::unique("readopt"),
        image: "busybox".into(),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "echo before; trap 'echo got-term; exit 7' TERM; while true; do sleep 0.05; done"
                .into(),
        ]),
        cgroup_parent: Some(parent.clone()),
        ..ContainerConfig::default()
    };
    let pid = {
        let first = Runtime::new(&state, Arc::clone(&images), shim).expect("runtime");
        first.create(&cfg).expect("create");
        first.start(&cfg.id).expect("start")
        // The first runtime (the "agent") goes away here.
    };
    let second = Runtime::new(&state, images, shim).expect("runtime");
    let status = second.status(&cfg.id).expect("status");
    assert!(
        matches!(&status, ContainerStatus::Running { pid: p, started_at } if *p == pid && started_at.ends_with('Z')),
        "{status:?}"
    );
    let log = second.log_path(&cfg.id);
    assert!(eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("stdout F before"))
    }));
    second
        .kill(&cfg.id, nix::sys::signal::Signal::SIGTERM)
        .expect("kill");
    let status = second.wait(&cfg.id, Duration::from_secs(10)).expect("wait");
    assert_eq!(status.code, 7);
    // The new runtime reads the whole log back, as `kubectl logs` would.
    let texts: Vec<String> = second
        .logs(&cfg.id)
        .expect("logs")
        .iter()
        .map(|e| String::from_utf8_lossy(&e.text).into_owned())
        .collect();
    assert_eq!(texts, ["before", "got-term"]);
    second.remove(&cfg.id).expect("remove");
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(hierarchy.path().join(&parent));
    }
}

/// Env var that turns this test binary into a throwaway "agent" process.
const AGENT_ROLE: &str = "BULWARK_TEST_AGENT_STATE";

#[test]
fn containers_outlive_a_killed_agent_and_are_readopted() {
    use std::io::BufRead;
    if let Ok(dir) = std::env::var(AGENT_ROLE) {
        // Child role: start a container, report, then wait to be killed.
        let dir = std::path::PathBuf::from(dir);
        let images = Arc::new(ImageStore::open(dir.join("images")).expect("store"));
        images
            .import_rootfs(&common::busybox_rootfs_tar(&dir), "busybox")
            .expect("import");
        let runtime = Runtime::new(
            dir.join("state"),
            images,
            env!("CARGO_BIN_EXE_bulwark-runtime-shim"),
        )
        .expect("runtime");
        let cfg = ContainerConfig {
            id: common::unique("orphan"),
            image: "busybox".into(),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.02; done".into(),
            ]),
            cgroup_parent: Some(std::env::var("BULWARK_TEST_CGROUP").expect("cgroup parent")),
            ..ContainerConfig::default()
        };
        runtime.create(&cfg).expect("create");
        runtime.start(&cfg.id).expect("start");
        println!("started {}", cfg.id);
        loop {
            std::thread::park();
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let parent = common::unique("bulwark-test");
    let mut agent = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "containers_outlive_a_killed_agent_and_are_readopted",
            "--nocapture",
        ])
        .env(AGENT_ROLE, dir.path())
        .env("BULWARK_TEST_CGROUP", &parent)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn agent");
    let stdout = agent.stdout.take().expect("agent stdout");
    let id = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("started ").map(str::to_string))
        .expect("agent started a container");
    agent.kill().expect("kill agent");
    agent.wait().expect("reap agent");

    let images = Arc::new(ImageStore::open(dir.path().join("images")).expect("store"));
    let runtime = Runtime::new(
        dir.path().join("state"),
        images,
        env!("CARGO_BIN_EXE_bulwark-runtime-shim"),
    )
    .expect("runtime");
    assert!(matches!(
        runtime.status(&id).expect("status"),
        ContainerStatus::Running { .. }
    ));
    // Logs keep flowing with the agent gone.
    let ticks = || {
        std::fs::read_to_string(runtime.log_path(&id))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let after_kill = ticks();
    assert!(
        eventually(Duration::from_secs(10), || ticks() > after_kill + 5),
        "log stopped growing at {after_kill} lines"
    );
    runtime.remove(&id).expect("remove");
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(hierarchy.path().join(&parent));
    }
}

#[test]
fn exec_runs_inside_the_container_with_its_restrictions() {
    let f = Fixture::new();
    let mut cfg = f.config("echo $$ > /tmp/init-pid; sleep 60");
    cfg.security.run_as_user = Some(1000);
    cfg.security.run_as_group = Some(1000);
    cfg.env = vec![("GREETING".into(), "hi".into())];
    f.runtime.create(&cfg).expect("create");
    f.runtime.start(&cfg.id).expect("start");
    let run = |script: &str| {
        let out = f
            .runtime
            .exec(
                &cfg.id,
                &["sh".into(), "-c".into(), script.into()],
                Duration::from_secs(10),
            )
            .expect("exec");
        (
            out.code,
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    };
    assert!(eventually(Duration::from_secs(10), || run(
        "cat /tmp/init-pid"
    )
    .1 == "1"));
    let (code, out, _) =
        run("id; echo $GREETING; hostname; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        format!(
            "uid=1000 gid=1000\nhi\n{}\nNoNewPrivs:\t1\nSeccomp:\t2",
            cfg.id
        )
    );
    let (code, _, err) = run("unshare -U true");
    assert_eq!(code, 1, "{err}");
    assert_eq!(run("exit 42").0, 42, "exit codes propagate");
    let err = f
        .runtime
        .exec(&cfg.id, &["nonesuch".into()], Duration::from_secs(10))
        .expect_err("missing command");
    assert_eq!(
        err.to_string(),
        r#"exec: "nonesuch": executable file not found in $PATH"#
    );
    f.runtime.remove(&cfg.id).expect("remove");
}

#[test]
fn containers_of_a_pod_share_the_sandbox_namespaces() {
    use bulwark_runtime::NamespaceKind;
    let f = Fixture::new();
    let mut sandbox = f.config("sleep 60");
    sandbox.hostname = Some("pod-a".into());
    f.runtime.create(&sandbox).expect("create sandbox");
    let pid = f.runtime.start(&sandbox.id).expect("start sandbox");
    let ns = |kind: &str| std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).expect("ns link");

    let mut app = f.config("hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; readlink /proc/self/ns/mnt");
    app.join_namespaces = ["net", "ipc", "uts"]
        .iter()
        .zip([
            NamespaceKind::Network,
            NamespaceKind::Ipc,
            NamespaceKind::Uts,
        ])
        .map(|(name, kind)| {
            (
                kind,
                std::path::PathBuf::from(format!("/proc/{pid}/ns/{name}")),
            )
        })
        .collect();
    let (status, log) = f.run(app);
    assert_eq!(status.code, 0, "{log}");
    let out = lines(&log);
    assert_eq!(out[0], "stdout: pod-a");
    assert_eq!(out[1], format!("stdout: {}", ns("net").display()));
    assert_eq!(out[2], format!("stdout: {}", ns("ipc").display()));
    assert_ne!(
        out[3],
        format!("stdout: {}", ns("mnt").display()),
        "own mount namespace"
    );
    f.runtime.remove(&sandbox.id).expect("remove sandbox");
}

#[test]
fn logs_rotate_by_size() {
    let f = Fixture::new();
    let mut cfg = f.config("i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done");
    cfg.log = bulwark_runtime::LogConfig {
        max_bytes: 2000,
        max_files: 3,
    };
    f.runtime.create(&cfg).expect("create");
    f.runtime.start(&cfg.id).expect("start");
    f.runtime
        .wait(&cfg.id, Duration::from_secs(30))
        .expect("wait");
    let log = f.runtime.log_path(&cfg.id);
    let read = |suffix: &str| {
        std::fs::read_to_string(format!("{}{suffix}", log.display())).unwrap_or_default()
    };
    let (current, older, oldest) = (read(""), read(".1"), read(".2"));
    assert!(read(".3").is_empty(), "at most 3 files");
    for file in [&current, &older, &oldest] {
        assert!(
            !file.is_empty() && file.len() <= 2000,
            "{} bytes",
            file.len()
        );
    }
    assert!(current.ends_with("stdout F line-199\n"), "{current}");
    f.runtime.remove(&cfg.id).expect("remove");
}

#[test]
fn a_killed_shim_leaves_a_container_that_can_still_be_stopped_and_removed() {
    let f = Fixture::new();
    let cfg = f.config("sleep 60");
    f.runtime.create(&cfg).expect("create");
    let pid = f.runtime.start(&cfg.id).expect("start");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let shim: i32 = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|p| p.trim().parse().ok())
        .expect("PPid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill shim");
    // The container outlives its shim and is still reported running.
    assert!(eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{shim}/cmdline")).is_ok_and(|c| c.is_empty())
            || !std::path::Path::new(&format!("/proc/{shim}")).exists()
    }));
    let status = f.runtime.status(&cfg.id).expect("status");
    assert!(
        matches!(status, ContainerStatus::Running { pid: p, .. } if p == pid),
        "{status:?}"
    );
    f.runtime
        .kill(&cfg.id, nix::sys::signal::Signal::SIGKILL)
        .expect("kill");
    let exit = f
        .runtime
        .wait(&cfg.id, Duration::from_secs(10))
        .expect("wait");
    assert_eq!(exit.reason, "Unknown", "no shim was left to record it");
    f.runtime.remove(&cfg.id).expect("remove");
    let cgroup = cgroup_file(&f.cgroup_parent, &cfg.id, "pids", "");
    assert!(!cgroup.exists(), "the orphaned cgroup is removed too");
}

#[test]
fn a_runc_compatible_binary_runs_the_same_hardened_bundle() {
    let runc = "/usr/sbin/runc";
    let f = Fixture::with(|runtime| runtime.with_oci_runtime(runc));
    let (status, log) = f.run(f.config(
        "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; unshare -U true; echo rc=$?; exit 3",
    ));
    assert_eq!((status.code, status.reason.as_str()), (3, "Error"), "{log}");
    let out = lines(&log);
    for want in [
        "stdout: CapEff:\t00000000a80425fb",
        "stdout: NoNewPrivs:\t1",
        "stdout: Seccomp:\t2",
        "stdout: rc=1",
    ] {
        assert!(
            out.contains(&want.to_string()),
            "{want} missing from {out:?}"
        );
    }

    let cfg = f.config("sleep 60");
    f.runtime.create(&cfg).expect("create");
    f.runtime.start(&cfg.id).expect("start");
    let out = f
        .runtime
        .exec(&cfg.id, &["id".into()], Duration::from_secs(10))
        .expect("exec");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "uid=0(root) gid=0(root)"
    );
    // PID 1 of a namespace ignores SIGTERM without a handler; SIGKILL it.
    f.runtime
        .kill(&cfg.id, nix::sys::signal::Signal::SIGKILL)
        .expect("kill");
    let status = f
        .runtime
        .wait(&cfg.id, Duration::from_secs(10))
        .expect("wait");
    assert_eq!((status.code, status.signal), (137, Some(9)));
    f.runtime.remove(&cfg.id).expect("remove");
}

#[test]
fn exec_with_a_terminal_and_resize() {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let f = Fixture::new();
    let cfg = f.config("sleep 60");
    f.runtime.create(&cfg).expect("create");
    f.runtime.start(&cfg.id).expect("start");
    let session = f
        .runtime
        .exec_tty(
            &cfg.id,
            &[
                "sh".into(),
                "-c".into(),
                "tty; stty size; read line; stty size; echo got:$line; exit 5".into(),
            ],
            24,
            80,
        )
        .expect("exec with a terminal");
    let output = Arc::new(Mutex::new(String::new()));
    let reader = {
        let output = Arc::clone(&output);
        let mut terminal = session.terminal().try_clone().expect("clone terminal");
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = terminal.read(&mut buf) {
                if n == 0 {
                    break;
                }
                output
                    .lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let seen = |text: &str| output.lock().expect("lock").contains(text);
    assert!(
        eventually(Duration::from_secs(10), || seen("24 80")),
        "{}",
        output.lock().expect("lock")
    );
    session.resize(40, 100).expect("resize");
    session
        .terminal()
        .write_all(b"hello\n")
        .expect("type into the terminal");
    assert!(
        eventually(Duration::from_secs(10), || seen("got:hello")),
        "{}",
        output.lock().expect("lock")
    );
    let text = output.lock().expect("lock").clone();
    assert!(
        text.starts_with("/dev/pts/0"),
        "a terminal of the container's own devpts: {text:?}"
    );
    assert!(text.contains("40 100"), "resized: {text:?}");
    assert_eq!(session.wait().expect("wait"), 5);
    let _ = reader;
    f.runtime.remove(&cfg.id).expect("remove");
}

#[test]
fn pruning_images_spares_what_containers_run() {
    let f = Fixture::new();
    let cfg = f.config("sleep 60");
    f.runtime.create(&cfg).expect("create");
    f.runtime.start(&cfg.id).expect("start");
    // The image loses its name while a container still runs on its layers.
    let images = bulwark_runtime::ImageStore::open(f.dir.path().join("images")).expect("store");
    images.remove("busybox").expect("untag");
    assert_eq!(f.runtime.prune_images(Duration::ZERO).expect("prune"), 0);
    let out = f
        .runtime
        .exec(
            &cfg.id,
            &["ls".into(), "/bin/busybox".into()],
            Duration::from_secs(10),
        )
        .expect("exec");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "/bin/busybox");
    f.runtime.remove(&cfg.id).expect("remove");
    // Once no container uses them, the blobs and the layer go.
    assert!(f.runtime.prune_images(Duration::ZERO).expect("prune") >= 4);
    assert_eq!(
        std::fs::read_dir(f.dir.path().join("images/layers"))
            .expect("layers")
            .count(),
        0
    );
}

#[test]
fn an_exec_past_its_timeout_is_killed_inside_the_container() {
    let f = Fixture::new();
    let cfg = f.config("sleep 60");
    f.runtime.create(&cfg).expect("create");
    f.runtime.start(&cfg.id).expect("start");
    let err = f
        .runtime
        .exec(
            &cfg.id,
            &["sleep".into(), "30".into()],
            Duration::from_millis(500),
        )
        .expect_err("must time out");
    assert_eq!(
        err.to_string(),
        format!(
            r#"timed out after 500ms waiting for "sleep 30" in container "{}""#,
            cfg.id
        )
    );
    // Only the main process is left in the container.
    assert!(eventually(Duration::from_secs(10), || {
        f.runtime
            .exec(
                &cfg.id,
                &["ps".into(), "-o".into(), "args".into()],
                Duration::from_secs(10),
            )
            .is_ok_and(|out| !String::from_utf8_lossy(&out.stdout).contains("sleep 30"))
    }));
    f.runtime.remove(&cfg.id).expect("remove");
}

#[test]
fn attach_streams_output_and_feeds_stdin() {
    use bulwark_runtime::OutputStream;
    let f = Fixture::new();
    let mut cfg = f.config(
        "echo ready; read line; echo got:$line; echo oops >&2; read line; printf 'bye:%s' $line",
    );
    cfg.stdin = true;
    f.runtime.create(&cfg).expect("create");
    f.runtime.start(&cfg.id).expect("start");
    let mut first = f.runtime.attach(&cfg.id).expect("attach");
    let mut second = f.runtime.attach(&cfg.id).expect("second attach");
    // Output from the moment of attaching: wait for the first prompt.
    let read_until = |attach: &mut bulwark_runtime::Attach, want: &str| {
        let mut seen = String::new();
        while !seen.contains(want) {
            match attach.read().expect("read") {
                Some((stream, data)) => {
                    let tag = if stream == OutputStream::Stdout {
                        ""
                    } else {
                        "[err]"
                    };
                    seen.push_str(&format!("{tag}{}", String::from_utf8_lossy(&data)));
                }
                None => panic!("ended before {want:?}: {seen:?}"),
            }
        }
        seen
    };
    first.write_stdin(b"hello\n").expect("stdin");
    let out = read_until(&mut first, "got:hello");
    assert!(out.contains("got:hello"), "{out}");
    // Every client sees the output (the two streams may interleave).
    let mut out = read_until(&mut second, "got:hello");
    if !out.contains("[err]oops") {
        out.push_str(&read_until(&mut second, "[err]oops"));
    }
    second.write_stdin(b"world\n").expect("stdin");
    // A partial line (no newline) arrives at once, and then the end.
    let out = read_until(&mut first, "bye:world");
    assert!(out.ends_with("bye:world"), "{out}");
    assert!(
        first.read().expect("read").is_none(),
        "ends with the process"
    );
    let exit = f
        .runtime
        .wait(&cfg.id, Duration::from_secs(10))
        .expect("wait");
    assert_eq!(exit.code, 0);
    f.runtime.remove(&cfg.id).expect("remove");
}

#[test]
fn closing_stdin_through_an_attachment_ends_the_process_input() {
    let f = Fixture::new();
    let mut cfg = f.config("cat; echo :done");
    cfg.stdin = true;
    f.runtime.create(&cfg).expect("create");
    f.runtime.start(&cfg.id).expect("start");
    let mut attach = f.runtime.attach(&cfg.id).expect("attach");
    attach.write_stdin(b"abc").expect("stdin");
    attach.close_stdin().expect("close");
    let mut seen = String::new();
    while let Some((_, data)) = attach.read().expect("read") {
        seen.push_str(&String::from_utf8_lossy(&data));
    }
    assert_eq!(seen, "abc:done\n");
    let exit = f
        .runtime
        .wait(&cfg.id, Duration::from_secs(10))
        .expect("wait");
    assert_eq!(exit.code, 0);
    f.runtime.remove(&cfg.id).expect("remove");
}

#[test]
fn a_main_process_with_a_terminal_is_attached_to_and_resized() {
    let f = Fixture::new();
    let mut cfg = f.config("tty; read line; stty size; echo got:$line");
    cfg.tty = true;
    cfg.stdin = true;
    f.runtime.create(&cfg).expect("create");
    f.runtime.start(&cfg.id).expect("start");
    let mut attach = f.runtime.attach(&cfg.id).expect("attach");
    attach.resize(30, 90).expect("resize");
    attach.write_stdin(b"hello\n").expect("type");
    let mut seen = String::new();
    while !seen.contains("got:hello") {
        match attach.read().expect("read") {
            Some((_, data)) => seen.push_str(&String::from_utf8_lossy(&data)),
            None => break,
        }
    }
    let exit = f
        .runtime
        .wait(&cfg.id, Duration::from_secs(10))
        .expect("wait");
    assert_eq!(exit.code, 0);
    let log = std::fs::read_to_string(f.runtime.log_path(&cfg.id)).expect("log");
    let out = lines(&log);
    // The terminal echoes what was typed; `lines` drops its \r.
    assert!(out.contains(&"stdout: /dev/pts/0".to_string()), "{out:?}");
    assert!(
        out.contains(&"stdout: 30 90".to_string()),
        "resized: {out:?}"
    );
    assert!(seen.contains("got:hello"), "{seen:?}");
    f.runtime.remove(&cfg.id).expect("remove");
}

#[test]
fn supplemental_groups_and_a_shared_pid_namespace() {
    use bulwark_runtime::NamespaceKind;
    let f = Fixture::new();
    let mut first = f.config("exec sleep 60");
    first.security.run_as_user = Some(1000);
    first.security.run_as_group = Some(1000);
    first.security.supplemental_groups = vec![5, 6];
    f.runtime.create(&first).expect("create");
    let pid = f.runtime.start(&first.id).expect("start");
    let out = f
        .runtime
        .exec(&first.id, &["id".into()], Duration::from_secs(10))
        .expect("exec");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "uid=1000 gid=1000 groups=5,6"
    );
    // shareProcessNamespace: the second container joins the first's PID
    // namespace and sees its process.
    let mut second = f.config("ps -o pid,user,args");
    second.join_namespaces = vec![(NamespaceKind::Pid, format!("/proc/{pid}/ns/pid").into())];
    let (status, log) = f.run(second);
    assert_eq!(status.code, 0, "{log}");
    let out = lines(&log);
    assert!(
        out.iter()
            .any(|l| l.contains("sleep 60") && l.contains("1000")),
        "{out:?}"
    );
    f.runtime.remove(&first.id).expect("remove");
}

#[test]
fn deep_images_stack_their_layers_with_whiteouts_under_a_long_path() {
    // 80 layers of ~130-character paths: the classic `lowerdir=a:b:…`
    // option (10 KiB) would not fit mount(2)'s one page.
    let dir = tempfile::tempdir().expect("tempdir");
    let deep = dir.path().join("x".repeat(40));
    std::fs::create_dir_all(&deep).expect("deep dir");
    let images =
        std::sync::Arc::new(bulwark_runtime::ImageStore::open(deep.join("images")).expect("store"));
    let mut layers = vec![common::busybox_rootfs_bytes()];
    for n in 0..80 {
        let file = format!("layers/{n}");
        let content = format!("{n}");
        layers.push(common::layer_of(&[(file.as_str(), content.as_str())]));
    }
    // The top layer deletes what layer 0 added, and an /etc file of busybox's.
    layers.push(common::layer_of(&[
        ("layers/.wh.0", ""),
        ("etc/.wh.group", ""),
    ]));
    let layout = common::oci_layout_of(dir.path(), "example.com/deep:1", &layers);
    images.import_oci(&layout, None).expect("import deep image");
    let runtime = bulwark_runtime::Runtime::new(
        deep.join("state"),
        images,
        env!("CARGO_BIN_EXE_bulwark-runtime-shim"),
    )
    .expect("runtime");
    let parent = common::unique("bulwark-test");
    let cfg = ContainerConfig {
        id: common::unique("deep"),
        image: "example.com/deep:1".into(),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            "ls /layers | wc -l; cat /layers/79; echo; test -e /layers/0 || echo whited-out; test -e /etc/group || echo gone".into(),
        ]),
        cgroup_parent: Some(parent.clone()),
        ..ContainerConfig::default()
    };
    runtime.create(&cfg).expect("create");
    runtime.start(&cfg.id).expect("start");
    let exit = runtime
        .wait(&cfg.id, Duration::from_secs(30))
        .expect("wait");
    let log = std::fs::read_to_string(runtime.log_path(&cfg.id)).expect("log");
    runtime.remove(&cfg.id).expect("remove");
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(hierarchy.path().join(&parent));
    }
    assert_eq!(exit.code, 0, "{log}");
    assert_eq!(
        lines(&log),
        [
            "stdout: 79",
            "stdout: 79",
            "stdout: whited-out",
            "stdout: gone"
        ]
    );
}
