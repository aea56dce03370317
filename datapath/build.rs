//! Compiles the eBPF programs (`bpf/ward.c`) with clang into `$OUT_DIR/ward.bpf.o`, which
//! `src/bpf/loader.rs` embeds with `aya::include_bytes_aligned!`.

use std::{
    env,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

const MISSING_CLANG: &str =
    "clang is needed to build the BPF programs: apt-get install clang libbpf-dev";

/// Without clang (or libbpf's headers) the crate still builds, with an empty object: `ward
/// validate`, `plan` and `apply` need no BPF, and `NodeDatapath::open` then says what to
/// install. Under `CI=true` a missing prerequisite fails the build instead.
fn main() -> ExitCode {
    println!("cargo:rerun-if-env-changed=CI");
    match build() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) if env::var("CI").as_deref() == Ok("true") => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
        Err(message) => {
            let Some(out_dir) = env::var_os("OUT_DIR") else {
                eprintln!("error: {message}");
                return ExitCode::FAILURE;
            };
            if let Err(e) = std::fs::write(Path::new(&out_dir).join("ward.bpf.o"), b"") {
                eprintln!("error: {message}; and writing the empty object failed: {e}");
                return ExitCode::FAILURE;
            }
            let first = message.lines().next().unwrap_or_default();
            println!(
                "cargo:warning=built without BPF programs ({first}); ward-agent and the lab need them"
            );
            ExitCode::SUCCESS
        }
    }
}

fn build() -> Result<(), String> {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?);
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let bpf_dir = manifest_dir.join("bpf");
    let source = bpf_dir.join("ward.c");
    let object = out_dir.join("ward.bpf.o");

    println!("cargo:rerun-if-changed={}", source.display());
    println!(
        "cargo:rerun-if-changed={}",
        bpf_dir.join("ward.h").display()
    );
    println!("cargo:rerun-if-env-changed=CLANG");

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_owned());
    match Command::new(&clang).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => return Err(MISSING_CLANG.to_owned()),
    }

    let mut cmd = Command::new(&clang);
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall"])
        .arg("-I")
        .arg(&bpf_dir);
    // <linux/types.h> includes <asm/types.h>, which Debian/Ubuntu keep in the multiarch dir.
    if let Some(dir) = multiarch_include() {
        cmd.arg("-I").arg(dir);
    }
    cmd.arg("-c").arg(&source).arg("-o").arg(&object);

    let out = cmd
        .output()
        .map_err(|e| format!("running {clang}: {e}; {MISSING_CLANG}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let hint = if stderr.contains("bpf/bpf_helpers.h") || stderr.contains("asm/types.h") {
            format!("\n{MISSING_CLANG}")
        } else {
            String::new()
        };
        return Err(format!(
            "compiling {} failed ({}):\n{stderr}{hint}",
            source.display(),
            out.status
        ));
    }
    // clang warnings are worth seeing, but cargo only shows build-script output on failure.
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines().filter(|l| l.contains("warning:")) {
        println!("cargo:warning=ward.c: {line}");
    }
    Ok(())
}

/// The host's multiarch include directory holding `asm/types.h`, when it exists.
fn multiarch_include() -> Option<PathBuf> {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").ok()?;
    let triple = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        "arm" => "arm-linux-gnueabihf",
        _ => return None,
    };
    let dir = Path::new("/usr/include").join(triple);
    dir.join("asm").is_dir().then_some(dir)
}
