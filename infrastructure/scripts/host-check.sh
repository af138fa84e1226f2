#!/usr/bin/env bash
# Check that this host can run the platform's VM (cd infrastructure && vagrant up):
# CPU virtualisation, /dev/kvm, libvirtd running, group membership, Vagrant with the
# vagrant-libvirt plugin, Ansible. Says what to fix; exits 1 when something is missing.
set -uo pipefail

problems=0
ok() { printf '  [ok]   %s\n' "$*"; }
bad() { printf '  [FAIL] %s\n         fix: %s\n' "$1" "$2"; problems=$((problems + 1)); }
warn() { printf '  [warn] %s\n' "$*"; }

user=${SUDO_USER:-${USER:-$(id -un)}}
echo "Checking the host for the Container Pool PaaS VM (user: $user)"

# 1. virtualisation support
if grep -Eqw 'vmx|svm' /proc/cpuinfo 2>/dev/null; then
  ok "CPU virtualisation extensions (vmx/svm) present"
elif [ -e /dev/kvm ]; then
  ok "/dev/kvm present (CPU flags hidden, e.g. nested virtualisation)"
else
  bad "no CPU virtualisation support (no vmx/svm in /proc/cpuinfo, no /dev/kvm)" \
      "enable VT-x/AMD-V in the firmware (BIOS/UEFI), or nested virtualisation for a VM host"
fi
if [ -e /dev/kvm ]; then
  if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then ok "/dev/kvm usable by $(id -un)"
  else warn "/dev/kvm exists but $(id -un) cannot open it (fine if libvirt runs the VM as root/qemu)"
  fi
else
  bad "/dev/kvm missing" "load the module: sudo modprobe kvm_intel (or kvm_amd)"
fi

# 2. libvirtd
unit_active() { systemctl is-active --quiet "$1" 2>/dev/null; }
if command -v systemctl >/dev/null && { unit_active libvirtd || unit_active libvirtd.socket \
     || unit_active virtqemud.socket; }; then
  ok "libvirt daemon running"
elif pgrep -x libvirtd >/dev/null 2>&1 || pgrep -x virtqemud >/dev/null 2>&1; then
  ok "libvirt daemon running"
else
  bad "libvirtd is not running" "sudo systemctl enable --now libvirtd (install: infrastructure/scripts/host-install.sh)"
fi
if command -v virsh >/dev/null; then
  if virsh -c qemu:///system net-info default 2>/dev/null | grep -Eq '^Active: +yes'; then
    ok "libvirt network 'default' active"
  else
    warn "libvirt network 'default' not active (or not visible): sudo virsh net-start default"
  fi
else
  bad "virsh missing" "install libvirt's client tools (host-install.sh)"
fi

# 3. group membership
groups_now=" $(id -nG "$user" 2>/dev/null) "
for group in libvirt kvm; do
  if ! getent group "$group" >/dev/null; then
    [ "$group" = libvirt ] && bad "group libvirt does not exist" "install libvirt (host-install.sh)"
    continue
  fi
  if [[ "$groups_now" == *" $group "* ]]; then
    if [ "$(id -un)" = "$user" ] && [[ " $(id -nG) " != *" $group "* ]]; then
      bad "$user is in $group, but not in this session" "log out and back in (or: newgrp $group)"
    else
      ok "$user is in the $group group"
    fi
  elif [ "$user" = root ]; then
    ok "root needs no $group membership"
  else
    bad "$user is not in the $group group" "sudo usermod -aG $group $user, then log out and back in"
  fi
done

# 4. Vagrant, its libvirt plugin, Ansible
if command -v vagrant >/dev/null; then
  ok "vagrant $(vagrant --version 2>/dev/null | awk '{print $2}')"
  if vagrant plugin list 2>/dev/null | grep -q '^vagrant-libvirt'; then
    ok "vagrant-libvirt plugin installed"
  else
    bad "vagrant-libvirt plugin missing" "vagrant plugin install vagrant-libvirt (or host-install.sh)"
  fi
else
  bad "vagrant missing" "run infrastructure/scripts/host-install.sh"
fi
if command -v ansible-playbook >/dev/null; then
  ok "$(ansible-playbook --version 2>/dev/null | head -1)"
  if ansible-doc -t module ansible.posix.synchronize >/dev/null 2>&1; then
    ok "ansible.posix collection present"
  else
    bad "ansible.posix collection missing" \
        "ansible-galaxy collection install -r infrastructure/requirements.yml"
  fi
else
  bad "ansible-playbook missing" "run infrastructure/scripts/host-install.sh"
fi
if command -v rsync >/dev/null; then ok "rsync present"; else bad "rsync missing" "install rsync"; fi

# 5. resources (advice only)
mem_mb=$(awk '/MemAvailable/ {print int($2 / 1024)}' /proc/meminfo 2>/dev/null || echo 0)
want_mb=${PAAS_VM_MEMORY:-4096}
if [ "${mem_mb:-0}" -lt "$want_mb" ]; then
  warn "only ${mem_mb} MiB available; the VM wants ${want_mb} (set PAAS_VM_MEMORY lower)"
fi

echo
if [ "$problems" -gt 0 ]; then
  echo "$problems problem(s) found: fix them, then run this again."
  exit 1
fi
echo "All set: cd infrastructure && vagrant up"
