"""`llamafleet doctor`: the probe's output parsed and judged as a phone would answer, and the
wake-lock record the boot script and the services' prestart write (rendered and executed)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_service_templates import execute, render, run_script

from llamafleet import doctor
from llamafleet.diagnose import Row
from llamafleet.layout import paths_for
from llamafleet.serving import cluster
from llamafleet.serving.services import Service
from llamafleet.serving.wakelock import parse_record, prestart_lines, take_command

BOOT_ID = "3f1c2a9e-7d41-4b6e-9a0c-5e2f8d7b6a14"
OLD_BOOT_ID = "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"
NOW = 1767261600
RECORD = "/data/data/com.termux/files/home/llamafleet/run/wake-lock"

STATUS = """Name:\tcat
State:\tR (running)
Tgid:\t24811
Uid:\t10245\t10245\t10245\t10245
Cpus_allowed:\t{mask}
Cpus_allowed_list:\t{allowed}
voluntary_ctxt_switches:\t0
"""


def procs(count: int, uid: str = "10245") -> str:
    """`ls -ldn /proc/[0-9]*` as an app sees it: its own processes, plus a few of other users
    where /proc is not hidden."""
    lines = [f"dr-xr-xr-x 9 {uid} {uid} 0 2026-01-01 10:00 /proc/{1000 + i}" for i in range(count)]
    lines += [f"dr-xr-xr-x 9 0 0 0 2026-01-01 10:00 /proc/{i}" for i in (1, 2)]
    return "\n".join(lines)


def probe_output(**sections) -> str:
    """What the probe prints on a Pixel 8 with Android 14, the phantom killer off, the wake lock
    taken in this boot; keyword arguments replace sections."""
    values = {
        "release": "14", "sdk": "34", "model": "Pixel 8", "phantom": "false",
        "boot_id": BOOT_ID, "now": str(NOW), "record": f"{BOOT_ID} {NOW - 3 * 3600}",
        "boot_script": "executable", "cpuset": "/top-app",
        "status": STATUS.format(mask="ff", allowed="0-7"), "cpus": "0-7",
        "temps": "41200\n38900\n-273000\n0", "uid": "10245", "procs": procs(9),
    }
    values.update(sections)
    return "".join(f"{doctor.MARK}{key}\n{value}\n" for key, value in values.items())


def rows_of(output: str, termux_boot: bool = True) -> dict[str, Row]:
    rows = doctor.evaluate("pixel8", doctor.parse_probe(output), RECORD, termux_boot)
    assert all(row.worker == "pixel8" for row in rows)
    return {row.check: row for row in rows}


def test_a_well_prepared_android_14_phone_passes():
    rows = rows_of(probe_output())
    assert rows["Android"].status == "ok" and "Android 14 (SDK 34), Pixel 8" in rows["Android"].detail
    assert rows["phantom process killer"].status == "ok" and rows["phantom process killer"].detail == "disabled"
    assert rows["wake lock"].status == "ok" and "3 h 0 min ago" in rows["wake lock"].detail
    assert rows["boot script"].status == "ok"
    assert rows["cpuset"].status == "ok" and "all 8 CPUs" in rows["cpuset"].detail
    assert rows["temperature"].status == "ok" and rows["temperature"].detail.startswith("41 ")
    assert rows["processes"].status == "ok" and rows["processes"].detail.startswith("9 processes")
    assert rows["Termux:Boot unlock"].status == "info" and "first unlock" in rows["Termux:Boot unlock"].detail
    assert rows["battery optimisation"].status == "info" and "Unrestricted" in rows["battery optimisation"].fix
    assert not [row for row in rows.values() if row.status in ("fail", "warn")]


def test_android_12_with_the_killer_on_gets_the_device_config_commands():
    # Android 12 (SDK 31) has no feature flag: getprop answers nothing, the limit applies.
    rows = rows_of(probe_output(release="12", sdk="31", phantom="", procs=procs(27)))
    killer = rows["phantom process killer"]
    assert killer.status == "warn" and "probably enabled" in killer.detail
    assert killer.fix == ("adb shell device_config set_sync_disabled_for_tests persistent; "
                          "adb shell device_config put activity_manager max_phantom_processes 2147483647")
    assert rows["processes"].status == "warn" and "27 processes" in rows["processes"].detail


@pytest.mark.parametrize("release, sdk, expected", [
    ("12", "32", "adb shell settings put global settings_enable_monitor_phantom_procs false"),
    ("13", "33", "adb shell settings put global settings_enable_monitor_phantom_procs false"),
    ("15", "35", '"Disable child process restrictions"'),
])
def test_the_killer_fix_follows_the_android_version(release, sdk, expected):
    rows = rows_of(probe_output(release=release, sdk=sdk, phantom="true"))
    killer = rows["phantom process killer"]
    assert killer.status == "warn" and killer.detail.startswith("enabled")
    assert expected in killer.fix
    assert "device_config" not in killer.fix


def test_android_14_with_the_killer_off_does_not_limit_processes():
    rows = rows_of(probe_output(procs=procs(40)))
    assert rows["phantom process killer"].status == "ok"
    assert rows["processes"].status == "ok" and "not enforced" in rows["processes"].detail


def test_too_many_processes_with_the_killer_on_fail():
    rows = rows_of(probe_output(phantom="", procs=procs(35)))
    assert rows["processes"].status == "fail" and rows["processes"].detail.startswith("35 processes")
    assert "Disable child process restrictions" in rows["processes"].fix


def test_before_android_12_there_is_no_killer():
    rows = rows_of(probe_output(release="11", sdk="30", phantom="", procs=procs(50)))
    assert rows["phantom process killer"].status == "ok"
    assert rows["processes"].status == "ok"


def test_a_record_from_another_boot_fails():
    rows = rows_of(probe_output(record=f"{OLD_BOOT_ID} {NOW - 86400}"))
    wake = rows["wake lock"]
    assert wake.status == "fail"
    assert "not taken since boot: the phone dozes when idle" in wake.detail
    assert "50-llamafleet" in wake.fix


def test_no_record_fails_and_names_where_it_should_be():
    wake = rows_of(probe_output(record=""))["wake lock"]
    assert wake.status == "fail" and RECORD in wake.detail


def test_an_unreadable_boot_id_is_unknown_not_ok():
    assert rows_of(probe_output(boot_id=""))["wake lock"].status == "unknown"


def test_unreadable_thermal_zones_are_unknown_never_ok():
    rows = rows_of(probe_output(temps=""))
    assert rows["temperature"].status == "unknown"
    assert rows_of(probe_output(temps="-273000\n0"))["temperature"].status == "unknown"


def test_a_hot_phone_warns():
    row = rows_of(probe_output(temps="38000\n75000"))["temperature"]
    assert row.status == "warn" and row.detail.startswith("75 ")


@pytest.mark.parametrize("cpuset_name", ["/background", "/foreground"])  # One UI holds even foreground-ish Termux
def test_a_phone_held_to_its_little_cores_warns(cpuset_name):
    rows = rows_of(probe_output(cpuset=cpuset_name, status=STATUS.format(mask="0f", allowed="0-3")))
    cpuset = rows["cpuset"]
    assert cpuset.status == "warn"
    assert cpuset_name in cpuset.detail and "CPUs 0,1,2,3 of 8" in cpuset.detail
    assert "battery: Unrestricted" in cpuset.fix


def test_a_restricted_cpuset_warns_even_with_every_cpu_allowed():
    assert rows_of(probe_output(cpuset="/restricted"))["cpuset"].status == "warn"


@pytest.mark.parametrize("state, status", [("missing", "fail"), ("present", "fail"), ("executable", "ok")])
def test_boot_script(state, status):
    assert rows_of(probe_output(boot_script=state))["boot script"].status == status


def test_boot_script_turned_off_in_the_inventory_warns():
    row = rows_of(probe_output(boot_script="missing"), termux_boot=False)["boot script"]
    assert row.status == "warn" and "termux_boot = False" in row.detail


def test_cpu_list():
    assert doctor.cpu_list("0-3,6") == {0, 1, 2, 3, 6}
    assert doctor.cpu_list("") == set() and doctor.cpu_list("x") == set()


def test_probe_paths_under_home_expand_on_the_phone(tmp_path):
    """The probe run by a real shell: the record and the boot script are found under $HOME."""
    record = doctor.record_path("phone", {})
    assert record == "~/llamafleet/run/wake-lock"
    (tmp_path / "llamafleet/run").mkdir(parents=True)
    (tmp_path / "llamafleet/run/wake-lock").write_text(f"{OLD_BOOT_ID} {NOW}\n")
    script = tmp_path / ".termux/boot/50-llamafleet"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o600)
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    output = subprocess.run(["sh", "-c", doctor.probe_command(record)], env=env, capture_output=True, text=True).stdout
    phone = doctor.parse_probe(output)
    assert phone.record == f"{OLD_BOOT_ID} {NOW}"
    assert phone.boot_script == "present"
    assert phone.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert phone.processes and phone.allowed and phone.cpus


def test_a_configured_base_directory_is_used_for_the_record():
    assert doctor.record_path("phone", {"llamafleet_dir": "/sdcard/lf"}) == "/sdcard/lf/run/wake-lock"
    assert "'/sdcard/my lf/run/wake-lock'" in doctor.probe_command(paths_for("/sdcard/my lf").wake_lock_record)


def test_an_unreachable_phone_is_one_fail_row_and_the_others_are_checked(monkeypatch, capsys):
    import llamafleet.inventory_data as inventory_data

    hosts = [SimpleNamespace(name=name, data={}, is_termux=name != "server") for name in ("phone1", "phone2", "server")]
    monkeypatch.setattr(inventory_data, "load_inventory", lambda path: hosts)
    checked = []

    def check_phone(name, data):
        checked.append(name)
        if name == "phone1":
            raise TimeoutError("timed out")
        return [Row(name, "wake lock", "ok", "taken")]

    monkeypatch.setattr(doctor, "check_phone", check_phone)
    assert doctor._cmd_doctor(SimpleNamespace(inventory="inv.py")) == 1
    assert checked == ["phone1", "phone2"]
    out = capsys.readouterr().out
    assert "phone1" in out and "unreachable" in out and "FAIL" in out
    assert "phone2  wake lock" in out

    monkeypatch.setattr(doctor, "check_phone", lambda name, data: [Row(name, "x", "warn", "y")])
    assert doctor._cmd_doctor(SimpleNamespace(inventory="inv.py")) == 0


def test_the_masters_model_without_a_chat_template_warns(monkeypatch, capsys, tmp_path):
    import llamafleet.inventory_data as inventory_data
    from test_chat_template import model

    bare = str(model(tmp_path, None))
    master = {"llama_role": "master", "model_file": bare}
    hosts = [SimpleNamespace(name="server", data=master, is_termux=False),
             SimpleNamespace(name="phone1", data={"model_file": bare}, is_termux=True)]
    monkeypatch.setattr(inventory_data, "load_inventory", lambda path: hosts)
    monkeypatch.setattr(doctor, "check_phone", lambda name, data: [Row(name, "wake lock", "ok", "taken")])
    assert doctor._cmd_doctor(SimpleNamespace(inventory="inv.py")) == 0
    out = capsys.readouterr().out
    assert "server  chat template" in out and "carries no chat template" in out and "gemma3" in out
    assert "phone1  chat template" not in out

    master["llama_chat_template"] = "gemma3"
    doctor._cmd_doctor(SimpleNamespace(inventory="inv.py"))
    assert "chat template" not in capsys.readouterr().out


# The record as the phone writes it: rendered templates, executed with a stand-in termux-wake-lock.

def fake_termux(tmp_path: Path, works: bool = True) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "termux-wake-lock").write_text(f"#!/bin/sh\nexit {0 if works else 1}\n")
    (bin_dir / "termux-wake-lock").chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def this_boot() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def test_the_worker_prestart_records_the_wake_lock(tmp_path, monkeypatch):
    record = str(tmp_path / "base/run/wake-lock")
    target = SimpleNamespace(name="phone1", data={"llamafleet_dir": str(tmp_path / "base")})
    lines = cluster.prestart_lines(target, SimpleNamespace(platform="termux"))
    assert lines == prestart_lines(record) and lines[0].startswith("termux-wake-lock && ")
    script = run_script(Service("llama-rpc", "t", ["echo", "served"], prestart=lines), shell="/bin/sh")
    assert record in script and "$(date +%s)" in script  # the time is the phone's, not the deploy's
    for key, value in fake_termux(tmp_path).items():
        monkeypatch.setenv(key, value)
    before = int(time.time())
    result = execute(script, tmp_path)
    assert result.stdout.strip() == "served"
    taken = parse_record(Path(record).read_text())
    assert taken.boot_id == this_boot() and before <= taken.taken_at <= time.time() + 1
    phone = doctor.parse_probe(probe_output(record=Path(record).read_text(), boot_id=this_boot()))
    assert {r.check: r for r in doctor.evaluate("p", phone, record)}["wake lock"].status == "ok"


def boot_script(tmp_path: Path, record: str) -> Path:
    prefix = tmp_path / "usr"
    (prefix / "etc/profile.d").mkdir(parents=True)
    (prefix / "etc/profile.d/start-services.sh").write_text("true\n")
    text = render("termux/boot.sh.j2", prefix=str(prefix), address="127.0.0.1", network_wait=0,
                  log_file=str(tmp_path / "boot.log"), wake_lock=take_command(record))
    path = tmp_path / "50-llamafleet"
    path.write_text(text.replace(f"#!{prefix}/bin/sh", "#!/bin/sh"))
    path.chmod(0o700)
    return path


def test_the_boot_script_records_the_wake_lock(tmp_path):
    record = tmp_path / "home/llamafleet/run/wake-lock"
    path = boot_script(tmp_path, str(record))
    assert f"termux-wake-lock && mkdir -p {record.parent}" in path.read_text()
    record.parent.mkdir(parents=True)
    record.write_text(f"{OLD_BOOT_ID} 1\n")  # left by the previous boot
    subprocess.run([str(path)], check=True, env=fake_termux(tmp_path), timeout=30)
    assert parse_record(record.read_text()).boot_id == this_boot()


def test_no_record_when_the_wake_lock_fails(tmp_path):
    record = tmp_path / "run/wake-lock"
    path = boot_script(tmp_path, str(record))
    subprocess.run([str(path)], check=True, env=fake_termux(tmp_path, works=False), timeout=30)
    assert not record.exists()
    assert "termux-wake-lock failed" in (tmp_path / "boot.log").read_text()
