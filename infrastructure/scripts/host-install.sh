#!/usr/bin/env bash
# Install what the host needs to run the platform's VM: Vagrant, the vagrant-libvirt
# plugin, Ansible, and libvirt/KVM/QEMU (+ dnsmasq, bridge tools, rsync). Detects the
# distribution family from /etc/os-release: Debian/Ubuntu, Arch, RedHat (Fedora, RHEL,
# Rocky, Alma, CentOS Stream). Run as a user with sudo; then log out and back in so the
# new group memberships (libvirt, kvm) apply, and run host-check.sh.
set -euo pipefail

say() { printf '==> %s\n' "$*"; }
die() { printf 'host-install: %s\n' "$*" >&2; exit 1; }

[ -r /etc/os-release ] || die "/etc/os-release missing: cannot tell the distribution"
# shellcheck source=/dev/null
. /etc/os-release
ids=" ${ID:-} ${ID_LIKE:-} "

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || die "run as root or install sudo"
  SUDO=sudo
fi
target_user=${SUDO_USER:-${USER:-$(id -un)}}

family=""
case "$ids" in
  *" debian "*|*" ubuntu "*) family=debian;;
  *" arch "*|*" archlinux "*) family=arch;;
  *" rhel "*|*" fedora "*|*" centos "*) family=redhat;;
esac
[ -n "$family" ] || die "unsupported distribution '${PRETTY_NAME:-$ID}' (Debian/Ubuntu, Arch or RedHat family)"
say "distribution: ${PRETTY_NAME:-$ID} (family $family)"

case "$family" in
  debian)
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update
    $SUDO apt-get install -y qemu-kvm libvirt-daemon-system libvirt-clients bridge-utils \
      dnsmasq-base ebtables rsync ansible vagrant \
      || $SUDO apt-get install -y qemu-system-x86 libvirt-daemon-system libvirt-clients \
           bridge-utils dnsmasq-base rsync ansible vagrant
    # Debian ships the plugin as a package; Ubuntu's vagrant needs `vagrant plugin install`.
    $SUDO apt-get install -y vagrant-libvirt 2>/dev/null || true
    plugin_build_deps=(build-essential libvirt-dev pkg-config ruby-dev libxml2-dev libxslt1-dev zlib1g-dev)
    ;;
  arch)
    $SUDO pacman -Syu --needed --noconfirm qemu-base libvirt dnsmasq bridge-utils \
      iptables-nft openbsd-netcat rsync ansible vagrant
    plugin_build_deps=(base-devel pkgconf)
    ;;
  redhat)
    pm=dnf; command -v dnf >/dev/null || pm=yum
    if [ "${ID:-}" != fedora ]; then
      # RHEL and its rebuilds: Vagrant from HashiCorp's repository, Ansible from EPEL.
      $SUDO "$pm" install -y epel-release dnf-plugins-core || true
      if ! command -v vagrant >/dev/null; then
        $SUDO "$pm" config-manager --add-repo https://rpm.releases.hashicorp.com/RHEL/hashicorp.repo || true
      fi
    fi
    $SUDO "$pm" install -y qemu-kvm libvirt libvirt-daemon-kvm dnsmasq bridge-utils rsync \
      ansible-core vagrant
    $SUDO "$pm" install -y ansible || true   # the collections (ansible.posix) where packaged
    $SUDO "$pm" install -y vagrant-libvirt 2>/dev/null || true   # Fedora packages the plugin
    plugin_build_deps=(gcc make libvirt-devel ruby-devel libxml2-devel libxslt-devel zlib-devel)
    ;;
esac

say "enabling and starting libvirtd"
$SUDO systemctl enable --now libvirtd
$SUDO virsh net-autostart default >/dev/null 2>&1 || true
$SUDO virsh net-start default >/dev/null 2>&1 || true

if ! vagrant plugin list 2>/dev/null | grep -q vagrant-libvirt; then
  say "installing the vagrant-libvirt plugin (builds against libvirt's headers)"
  case "$family" in
    debian) $SUDO apt-get install -y "${plugin_build_deps[@]}";;
    arch) $SUDO pacman -S --needed --noconfirm "${plugin_build_deps[@]}";;
    redhat) $SUDO "$pm" install -y "${plugin_build_deps[@]}";;
  esac
  if [ -n "$SUDO" ]; then vagrant plugin install vagrant-libvirt
  else sudo -u "$target_user" vagrant plugin install vagrant-libvirt 2>/dev/null || vagrant plugin install vagrant-libvirt
  fi
fi

if ! ansible-doc -t module ansible.posix.synchronize >/dev/null 2>&1; then
  say "installing the ansible.posix collection (not bundled with this Ansible)"
  ansible-galaxy collection install -r "$(dirname "$0")/../requirements.yml"
fi

for group in libvirt kvm; do
  if getent group "$group" >/dev/null && ! id -nG "$target_user" | tr ' ' '\n' | grep -qx "$group"; then
    say "adding $target_user to the $group group"
    $SUDO usermod -aG "$group" "$target_user"
  fi
done

say "done. Log out and back in (group membership), then run: infrastructure/scripts/host-check.sh"
