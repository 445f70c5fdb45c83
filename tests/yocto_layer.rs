//! The Yocto layer (yocto/meta-roomd) against the repository it builds: the crate list against
//! Cargo.lock, the recipe against Cargo.toml, the sysusers file, the board files and the code's
//! own package hints, the kas file against board/raspberrypi/config.txt, and oelint-adv over
//! the recipes. Nothing here runs bitbake; see yocto/meta-roomd/README.md for what is untested.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const LAYER: &str = "yocto/meta-roomd";
const RECIPE: &str = "yocto/meta-roomd/recipes-roomd/roomd/roomd_git.bb";
const CRATES_INC: &str = "yocto/meta-roomd/recipes-roomd/roomd/roomd-crates.inc";
const KAS: &str = "yocto/kas/roomd-rpi4.yml";
const OELINT: &str = ".testenv/oelint/bin/oelint-adv";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Logical lines of a bitbake file: continuation lines joined, comments dropped.
fn bb_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(head) = line.strip_suffix('\\') {
            cur.push_str(head);
            continue;
        }
        cur.push_str(line);
        let joined = std::mem::take(&mut cur);
        if !joined.trim_start().starts_with('#') && !joined.trim().is_empty() {
            out.push(joined);
        }
    }
    out
}

/// The value of the last `VAR = "..."` (or `??=`, `?=`, `+=`, `:=`) in a bitbake file, with
/// whitespace collapsed; None when it is not assigned.
fn bb_var(text: &str, var: &str) -> Option<String> {
    let mut found = None;
    for line in bb_lines(text) {
        let Some(rest) = line.trim_start().strip_prefix(var) else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(op_end) = rest.find(['"', '\'']) else {
            continue;
        };
        let op = rest[..op_end].trim();
        if !["=", "?=", "??=", "+=", ":=", ".="].contains(&op) {
            continue;
        }
        let quote = rest.as_bytes()[op_end] as char;
        let value = &rest[op_end + 1..];
        let value = value.rfind(quote).map_or(value, |end| &value[..end]);
        found = Some(value.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    found
}

fn words(value: &str) -> BTreeSet<String> {
    value.split_whitespace().map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------------------------
// The crate list

/// crates.io packages of Cargo.lock: "name-version" -> checksum.
fn cargo_lock_crates() -> BTreeMap<String, String> {
    let lock: toml::Table = toml::from_str(&read("Cargo.lock")).expect("Cargo.lock parses");
    let packages = lock["package"].as_array().expect("Cargo.lock has packages");
    packages
        .iter()
        .filter(|p| {
            p.get("source")
                .and_then(|s| s.as_str())
                .is_some_and(|s| s.contains("crates.io"))
        })
        .map(|p| {
            let field = |k: &str| {
                p.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            (
                format!("{}-{}", field("name"), field("version")),
                field("checksum"),
            )
        })
        .collect()
}

/// The .inc's crate:// entries ("name-version") and its sha256sum flags ("name-version" -> sum).
fn crates_inc() -> (BTreeSet<String>, BTreeMap<String, String>) {
    let inc = read(CRATES_INC);
    let mut uris = BTreeSet::new();
    let mut sums = BTreeMap::new();
    for line in inc.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("crate://crates.io/") {
            let rest = rest.trim_end_matches('\\').trim();
            let (name, version) = rest
                .split_once('/')
                .expect("crate://crates.io/NAME/VERSION");
            uris.insert(format!("{name}-{version}"));
        } else if let Some(rest) = line.strip_prefix("SRC_URI[") {
            let (key, value) = rest.split_once("] = ").expect("SRC_URI[...] = \"...\"");
            let key = key.strip_suffix(".sha256sum").expect("a sha256sum flag");
            sums.insert(key.to_owned(), value.trim_matches('"').to_owned());
        }
    }
    (uris, sums)
}

fn first_differences(a: &BTreeSet<String>, b: &BTreeSet<String>) -> String {
    let mut out: Vec<String> = a
        .difference(b)
        .take(10)
        .map(|c| format!("only in Cargo.lock: {c}"))
        .collect();
    out.extend(
        b.difference(a)
            .take(10)
            .map(|c| format!("only in the .inc: {c}")),
    );
    out.join("\n")
}

#[test]
fn the_crates_inc_lists_exactly_the_crates_of_cargo_lock() {
    let lock = cargo_lock_crates();
    let (uris, sums) = crates_inc();
    let want: BTreeSet<String> = lock.keys().cloned().collect();
    let fix = "Cargo.lock and the layer's crate list disagree: run tools/gen-crates-inc and \
               commit yocto/meta-roomd/recipes-roomd/roomd/roomd-crates.inc";
    assert!(uris == want, "{fix}\n{}", first_differences(&want, &uris));
    let have_sums: BTreeSet<String> = sums.keys().cloned().collect();
    assert!(
        have_sums == want,
        "{fix}\n{}",
        first_differences(&want, &have_sums)
    );
    for (krate, sum) in &lock {
        assert_eq!(&sums[krate], sum, "{fix}\nthe checksum of {krate} differs");
    }
}

#[test]
fn the_crates_inc_is_what_the_generator_writes() {
    let out = Command::new("python3")
        .arg(repo("tools/gen-crates-inc"))
        .arg("--check")
        .output()
        .expect(
            "python3 is needed for tools/gen-crates-inc (Debian's python3; bash tools/setup.sh)",
        );
    assert!(
        out.status.success(),
        "yocto/meta-roomd/recipes-roomd/roomd/roomd-crates.inc is not what Cargo.lock gives: run \
         tools/gen-crates-inc and commit the result\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// The recipe against the repository

#[test]
fn the_recipe_version_and_license_checksum_follow_cargo_toml() {
    let recipe = read(RECIPE);
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).unwrap();
    let version = manifest["package"]["version"].as_str().unwrap();
    let pv = bb_var(&recipe, "PV").expect("the recipe sets PV");
    assert_eq!(
        pv,
        format!("{version}+git"),
        "PV in {RECIPE} must follow Cargo.toml's version"
    );

    // LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=N;endline=M;md5=..."
    let lic = bb_var(&recipe, "LIC_FILES_CHKSUM").expect("LIC_FILES_CHKSUM");
    let param = |k: &str| {
        lic.split(';')
            .find_map(|p| p.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} in LIC_FILES_CHKSUM"))
            .to_owned()
    };
    assert!(lic.starts_with("file://Cargo.toml;"), "{lic}");
    let (begin, end): (usize, usize) = (
        param("beginline").parse().unwrap(),
        param("endline").parse().unwrap(),
    );
    let lines: String = read("Cargo.toml")
        .lines()
        .skip(begin - 1)
        .take(end + 1 - begin)
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        lines.contains("license = \"Apache-2.0\""),
        "LIC_FILES_CHKSUM points at {lines:?}"
    );
    let md5 = Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(lines.as_bytes())?;
            child.wait_with_output()
        })
        .expect("md5sum (coreutils)");
    let md5 = String::from_utf8_lossy(&md5.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        param("md5"),
        md5,
        "LIC_FILES_CHKSUM's md5 in {RECIPE} is stale"
    );
    assert_eq!(
        bb_var(&recipe, "LICENSE").as_deref(),
        manifest["package"]["license"].as_str()
    );
}

#[test]
fn the_recipe_user_and_groups_are_those_of_the_sysusers_file() {
    let recipe = read(RECIPE);
    let sysusers = read("systemd/roomd.sysusers");
    let (mut users, mut groups, mut members) = (Vec::new(), BTreeSet::new(), BTreeSet::new());
    for line in sysusers
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.first().copied() {
            Some("u") => users.push((f[1].to_owned(), f.last().unwrap().to_string())),
            Some("g") => {
                groups.insert(f[1].to_owned());
            }
            Some("m") => {
                members.insert(f[2].to_owned());
            }
            _ => {}
        }
    }
    assert_eq!(users.len(), 1, "one service user in systemd/roomd.sysusers");
    let (user, home) = &users[0];

    let useradd = bb_var(&recipe, "USERADD_PARAM:${PN}").expect("USERADD_PARAM:${PN}");
    let args: Vec<&str> = useradd.split_whitespace().collect();
    let opt = |name: &str| args.iter().position(|a| *a == name).map(|i| args[i + 1]);
    assert_eq!(
        args.last().copied(),
        Some(user.as_str()),
        "useradd names the sysusers user"
    );
    assert!(
        args.contains(&"--system") && args.contains(&"--user-group"),
        "{useradd}"
    );
    assert_eq!(
        opt("--home-dir")
            .map(|h| h.replace("${localstatedir}", "/var"))
            .as_deref(),
        Some(home.as_str()),
        "the home directory differs from systemd/roomd.sysusers"
    );
    let recipe_groups: BTreeSet<String> = opt("--groups")
        .unwrap_or_default()
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(
        recipe_groups, members,
        "useradd --groups must be the sysusers file's m lines"
    );

    let groupadd = bb_var(&recipe, "GROUPADD_PARAM:${PN}").unwrap_or_default();
    let created: BTreeSet<String> = groupadd
        .split(';')
        .filter_map(|g| g.split_whitespace().last().map(str::to_owned))
        .collect();
    assert_eq!(
        created, groups,
        "GROUPADD_PARAM must create the sysusers file's g groups"
    );
}

#[test]
fn the_recipe_installs_the_repositorys_own_unit_and_board_files() {
    let recipe = read(RECIPE);
    // Every ${S}/path the recipe installs exists in this repository (same revision as the code).
    let mut installed = 0;
    for word in recipe.split_whitespace() {
        let Some(path) = word.strip_prefix("${S}/") else {
            continue;
        };
        let path = path.trim_matches('"');
        if path.contains('*') {
            let dir = Path::new(path).parent().unwrap();
            assert!(
                repo(dir.to_str().unwrap()).is_dir(),
                "{RECIPE} installs {path}: no such directory"
            );
        } else if path != "tools/gen-crates-inc" || recipe.contains("do_update_crates") {
            assert!(
                repo(path).is_file(),
                "{RECIPE} installs ${{S}}/{path}, which is not in the repository"
            );
        }
        installed += 1;
    }
    for needed in [
        "systemd/roomd.service",
        "systemd/roomd.sysusers",
        "board/raspberrypi/roomd.toml",
        "board/raspberrypi/asound.conf",
    ] {
        assert!(
            recipe.contains(&format!("${{S}}/{needed}")),
            "{RECIPE} does not install {needed}"
        );
    }
    assert!(installed >= 5);
    assert!(
        recipe.contains("${S}/board/raspberrypi/udev/*.rules"),
        "the board's udev rules"
    );

    // ... and the layer holds no copies of them.
    let mut stack = vec![repo(LAYER)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let copied = name.ends_with(".service")
                || name.ends_with(".sysusers")
                || name.ends_with(".rules")
                || name == "roomd.toml"
                || name == "asound.conf"
                || name == "config.txt";
            assert!(
                !copied,
                "{} copies a repository file into the layer; install it from ${{S}}",
                path.display()
            );
        }
    }

    // The unit's binary is where cargo.bbclass installs it, and the config file is a CONFFILE.
    assert!(read("systemd/roomd.service").contains("ExecStart=/usr/bin/roomd "));
    assert_eq!(
        bb_var(&recipe, "SYSTEMD_SERVICE:${PN}").as_deref(),
        Some("roomd.service")
    );
    let conffiles = words(&bb_var(&recipe, "CONFFILES:${PN}").expect("CONFFILES:${PN}"));
    assert!(
        conffiles.contains("${sysconfdir}/roomd/roomd.toml"),
        "{conffiles:?}"
    );
    let inherits: BTreeSet<String> = bb_lines(&recipe)
        .iter()
        .filter_map(|l| l.strip_prefix("inherit "))
        .flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    for class in ["cargo", "cargo-update-recipe-crates", "systemd", "useradd"] {
        assert!(inherits.contains(class), "{RECIPE} must inherit {class}");
    }
    assert!(recipe.contains("require ${BPN}-crates.inc"));
}

/// Every "Yocto <package>" hint in src/media (what `roomd media-check` tells an admin to install)
/// names a package the recipe depends on or recommends.
#[test]
fn every_package_the_media_code_names_is_a_runtime_dependency() {
    let recipe = read(RECIPE);
    let mut deps = words(&bb_var(&recipe, "RDEPENDS:${PN}").expect("RDEPENDS:${PN}"));
    deps.extend(words(
        &bb_var(&recipe, "RRECOMMENDS:${PN}").unwrap_or_default(),
    ));
    for needed in [
        "gstreamer1.0-plugins-bad-webrtc",
        "libnice",
        "gstreamer1.0-plugins-good-video4linux2",
        "gstreamer1.0-plugins-base-alsa",
        "gstreamer1.0-plugins-base-opus",
        "gstreamer1.0-plugins-ugly-x264",
        "gstreamer1.0-plugins-bad-webrtcdsp",
        "gstreamer1.0-plugins-bad-kms",
    ] {
        assert!(deps.contains(needed), "{RECIPE}: RDEPENDS lacks {needed}");
    }
    let mut named = BTreeSet::new();
    for entry in std::fs::read_dir(repo("src/media")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (i, _) in text.match_indices("Yocto ") {
            let rest = text[i + "Yocto ".len()..]
                .trim_start_matches(|c: char| c.is_whitespace() || c == '\\');
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-+._".contains(*c))
                .collect();
            let name = name.trim_end_matches('.').to_owned();
            if name.len() > 2 && name.chars().next().unwrap().is_ascii_lowercase() {
                named.insert(name);
            }
        }
    }
    assert!(
        named.len() >= 5,
        "found the media code's package hints: {named:?}"
    );
    let missing: Vec<_> = named.difference(&deps).collect();
    assert!(
        missing.is_empty(),
        "src/media names Yocto packages {missing:?} that {RECIPE} neither RDEPENDS on nor RRECOMMENDS"
    );
}

// ---------------------------------------------------------------------------------------------
// layer.conf, the layer's docs, the kas file

#[test]
fn the_layer_is_what_yocto_check_layer_expects() {
    let conf = read("yocto/meta-roomd/conf/layer.conf");
    let compat =
        words(&bb_var(&conf, "LAYERSERIES_COMPAT_roomd").expect("LAYERSERIES_COMPAT_roomd"));
    for series in ["wrynose", "blacksail"] {
        assert!(
            compat.contains(series),
            "LAYERSERIES_COMPAT_roomd lacks {series}"
        );
    }
    assert!(bb_var(&conf, "BBFILE_COLLECTIONS").is_some_and(|c| c.contains("roomd")));
    let readme = read("yocto/meta-roomd/README.md");
    let lower = readme.to_lowercase();
    assert!(
        lower.contains("maintainer") && lower.contains("patch"),
        "README: maintainer and patch lines"
    );
    let email = |w: &str| {
        let w = w.trim_matches(|c: char| "<>(),.".contains(c));
        w.split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && !host.is_empty())
    };
    assert!(
        readme.split_whitespace().any(email),
        "README: an email address"
    );
    // yocto-check-layer skips these checks for a README that points at another README.
    assert!(
        !readme.contains("README"),
        "the layer's README names no other README"
    );
    assert!(
        repo("yocto/meta-roomd/SECURITY.md").is_file(),
        "SECURITY.md"
    );
}

#[test]
fn every_kas_repository_is_pinned_to_a_commit() {
    let kas = read(KAS);
    let mut urls = 0;
    let mut lines = kas.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("url:") {
            urls += 1;
            let commit = lines
                .clone()
                .take_while(|l| !l.trim_start().starts_with("url:"))
                .find_map(|l| l.trim().strip_prefix("commit:").map(str::trim));
            let commit = commit.unwrap_or_else(|| panic!("{KAS}: {} has no commit:", line.trim()));
            assert!(
                commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
                "{KAS}: {} is pinned to {commit:?}, not a full commit ID",
                line.trim()
            );
        }
        assert!(
            !line.trim_start().starts_with("branch:"),
            "{KAS}: pin commits, not branches"
        );
    }
    assert!(
        urls >= 5,
        "{KAS}: bitbake, openembedded-core, meta-yocto, meta-openembedded, meta-raspberrypi"
    );
    assert!(kas.contains("require conf/include/roomd-packageconfig.inc"));
    assert!(repo("yocto/meta-roomd/conf/include/roomd-packageconfig.inc").is_file());
}

/// board/raspberrypi/config.txt (Raspberry Pi OS) and the kas file's meta-raspberrypi
/// variables say the same thing.
#[test]
fn the_kas_file_sets_every_config_txt_setting() {
    let kas = read(KAS);
    let settings: BTreeSet<String> = read("board/raspberrypi/config.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    // Settings meta-raspberrypi has a variable for; the rest go through RPI_EXTRA_CONFIG.
    let by_variable = |setting: &str| -> Option<String> {
        let (key, value) = setting.split_once('=')?;
        Some(match key {
            "dtoverlay" if value.starts_with("vc4-") => format!("VC4DTBO = \"{value}\""),
            "disable_overscan" => format!("DISABLE_OVERSCAN = \"{value}\""),
            "disable_splash" => format!("DISABLE_SPLASH = \"{value}\""),
            "gpu_mem" => format!("GPU_MEM = \"{value}\""),
            "enable_uart" => format!("ENABLE_UART = \"{value}\""),
            _ => return None,
        })
    };
    let start = kas
        .find("RPI_EXTRA_CONFIG = '")
        .expect("RPI_EXTRA_CONFIG in the kas file");
    let body = &kas[start + "RPI_EXTRA_CONFIG = '".len()..];
    let body = &body[..body.find('\'').expect("RPI_EXTRA_CONFIG's closing quote")];
    let extra: BTreeSet<String> = body
        .split("\\n")
        .map(|l| l.trim_matches(|c: char| c.is_whitespace() || c == '\\'))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for setting in &settings {
        match by_variable(setting) {
            Some(var) => assert!(
                kas.contains(&var),
                "{KAS} must set {var} (config.txt: {setting})"
            ),
            None => assert!(
                extra.contains(setting),
                "{KAS}: RPI_EXTRA_CONFIG lacks {setting} (config.txt)"
            ),
        }
    }
    for line in &extra {
        assert!(
            settings.contains(line),
            "{KAS}: RPI_EXTRA_CONFIG has {line}, board/raspberrypi/config.txt does not"
        );
    }
    for line in kas
        .lines()
        .chain(read("board/raspberrypi/config.txt").lines())
    {
        assert!(
            line.len() <= 80 || !extra.contains(line.trim()),
            "config.txt lines stay within 80 characters"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// oelint-adv

#[test]
fn oelint_adv_finds_no_error_in_the_layer() {
    let oelint = repo(OELINT);
    assert!(
        oelint.is_file(),
        "oelint-adv is missing: run `bash tools/setup.sh` (it installs oelint-adv from PyPI into \
         .testenv/oelint), or `python3 -m venv .testenv/oelint && .testenv/oelint/bin/pip install oelint-adv`"
    );
    let mut recipes = Vec::new();
    let mut stack = vec![repo(LAYER)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "bb" || e == "bbappend")
            {
                recipes.push(path);
            }
        }
    }
    recipes.sort();
    assert!(
        recipes.len() >= 2,
        "the roomd recipe and the image: {recipes:?}"
    );
    for release in ["wrynose", "blacksail"] {
        let out = Command::new(&oelint)
            .args(["--quiet", "--jobs", "2", "--release", release])
            // It would ping HOMEPAGE; the test machines have no network.
            .args(["--suppress", "oelint.vars.homepageping"])
            .args(&recipes)
            .current_dir(repo("."))
            .output()
            .expect("running oelint-adv");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let errors: Vec<&str> = report.lines().filter(|l| l.contains(":error:")).collect();
        let warnings: Vec<&str> = report.lines().filter(|l| l.contains(":warning:")).collect();
        for w in &warnings {
            eprintln!("oelint-adv ({release}): {w}");
        }
        assert!(
            errors.is_empty() && (out.status.success() || !report.contains(":error:")),
            "oelint-adv --release {release} found errors in the layer:\n{}",
            errors.join("\n")
        );
        assert!(
            !report.contains("Traceback"),
            "oelint-adv failed:\n{report}"
        );
    }
}
