#!/bin/sh
# /init of the kiln initramfs for image {{ name }} (kernel {{ kernel_version }}), rendered by kiln.
# Opens the dm-verity protected root named on the kernel command line, mounts it read-only,
# puts writable overlays on /etc /var /root /home (state partition, else tmpfs) and starts the
# image's /sbin/init. A root that does not verify stops the boot.
#
# Kernel command line:
#   kiln.roothash=HEX      root hash of the verity tree (required)
#   kiln.hashoffset=BYTES  where the hash tree starts in the root device (required)
#   kiln.disk=PTUUID       MBR disk signature (8 hex digits) of the boot disk
#   kiln.root=part:N       root partition number on that disk (default 2)
#   kiln.root=http://URL   diskless: fetch the root image into RAM, check all of it against the
#                          root hash (veritysetup verify), attach it by losetup
#   kiln.seed=URL/         diskless: the host's seed; /init fetches meta-data, user-data,
#                          network-config and kiln-identity.tar into
#                          /var/lib/cloud/seed/nocloud/, where kiln-identity.service and
#                          cloud-init's NoCloud (in its local stage) read it as from a cidata
#                          disk. Not ds=nocloud-net;s=URL: cloud-init 22.4 takes that in its
#                          network stage only, where the NIC is up and cannot be renamed, and
#                          reads no network-config over HTTP
#   kiln.seed-by-mac=URL/  diskless, one command line for many hosts (a role's network UKI):
#                          the seed is URL/MAC/, MAC that of the NIC that got the DHCP lease,
#                          lowercase with hyphens (52-54-00-0b-00-01)
#   kiln.state=part:N      ext4 state partition (label kiln-state); absent: state in tmpfs
#   kiln.onfail=poweroff|hang   what a failed boot does (default poweroff)
export PATH=/bin:/sbin

IMAGE='{{ name }}'
STATE=/newroot/run/kiln/state

log() { echo "kiln-initramfs: $*"; }

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
exec </dev/console >/dev/console 2>&1
log "image $IMAGE, kernel $(uname -r)"

ROOTHASH= HASHOFFSET= DISK= ROOT=part:2 STATEPART= ONFAIL=poweroff SEED= SEED_BY_MAC=
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    kiln.roothash=*) ROOTHASH=${arg#*=} ;;
    kiln.hashoffset=*) HASHOFFSET=${arg#*=} ;;
    kiln.disk=*) DISK=${arg#*=} ;;
    kiln.root=*) ROOT=${arg#*=} ;;
    kiln.state=*) STATEPART=${arg#*=} ;;
    kiln.onfail=*) ONFAIL=${arg#*=} ;;
    kiln.seed=*) SEED=${arg#*=} ;;
    kiln.seed-by-mac=*) SEED_BY_MAC=${arg#*=} ;;
  esac
done

# Stops the boot: nothing of an unverified root may run.
fail() {
  log "FATAL: $*"
  log "FATAL: image $IMAGE cannot boot; expected root hash ${ROOTHASH:-<none given>}"
  log "boot stopped"
  if [ "$ONFAIL" = hang ]; then
    while :; do sleep 3600; done
  fi
  sleep 2
  poweroff -f
  while :; do sleep 3600; done
}

[ -n "$ROOTHASH" ] || fail "no kiln.roothash= on the kernel command line"
[ -n "$HASHOFFSET" ] || fail "no kiln.hashoffset= on the kernel command line"

load() {
  for m in "$@"; do
    insmod "/lib/modules/{{ kernel_version }}/$m" 2>/tmp/insmod.err ||
      grep -q 'File exists' /tmp/insmod.err ||
      log "warning: insmod $m: $(cat /tmp/insmod.err)"
  done
}
# Disk, dm-verity, filesystem modules, dependencies first (from the image's modules.dep).
MODULES="
{% for m in modules %}
{{ m }}
{% endfor %}
"
# Network modules, for kiln.root=http://…
NET_MODULES="
{% for m in net_modules %}
{{ m }}
{% endfor %}
"
log "loading {{ modules | length }} modules"
load $MODULES

# The partition NUM of disk DEV (vda -> vda2, nvme0n1 -> nvme0n1p2).
part() {
  case "$1" in
    *[0-9]) echo "/dev/${1}p$2" ;;
    *) echo "/dev/$1$2" ;;
  esac
}

# The disk whose MBR signature (bytes 440..443, little-endian) is $DISK; any disk when unset.
find_disk() {
  for b in /sys/block/*; do
    d=${b##*/}
    case "$d" in loop*|ram*|dm-*|sr*|zram*) continue ;; esac
    [ -b "/dev/$d" ] || continue
    [ -z "$DISK" ] && { echo "$d"; return 0; }
    sig=$(dd if="/dev/$d" bs=1 skip=440 count=4 2>/dev/null | hexdump -e '1/4 "%08x"')
    [ "$sig" = "$DISK" ] && { echo "$d"; return 0; }
  done
  return 1
}

case "$ROOT" in
  http://*|https://*)
    log "loading network modules"
    load $NET_MODULES
    ip link set lo up
    IFACE=
    for i in $(seq 1 100); do
      for n in /sys/class/net/*; do
        n=${n##*/}
        [ "$n" = lo ] && continue
        IFACE=$n
        break 2
      done
      sleep 0.1
    done
    [ -n "$IFACE" ] || fail "no network interface for $ROOT"
    log "dhcp on $IFACE"
    ip link set "$IFACE" up
    udhcpc -i "$IFACE" -s /etc/udhcpc.script -q -n -t 10 -T 2 || fail "no DHCP lease on $IFACE"
    mkdir -p /fetch
    mount -t tmpfs -o mode=0700,size=95% tmpfs /fetch
    log "fetching $ROOT"
    wget -q -O /fetch/root.img "$ROOT" || fail "cannot fetch $ROOT"
    log "fetched $(wc -c < /fetch/root.img) bytes; checking every block against the root hash"
    # All of it, before anything is mounted: a tampered image stops here, not at the first
    # bad read after switch_root.
    veritysetup verify /fetch/root.img /fetch/root.img "$ROOTHASH" --hash-offset="$HASHOFFSET" \
      >/tmp/verify.out 2>&1 || {
      cat /tmp/verify.out
      fail "root image from $ROOT does not match root hash $ROOTHASH (veritysetup verify failed): refusing to boot it"
    }
    log "root image verified"
    if [ -n "$SEED_BY_MAC" ]; then
      SEED="$SEED_BY_MAC$(tr : - < "/sys/class/net/$IFACE/address")/"
    fi
    if [ -n "$SEED" ]; then
      mkdir -p /fetch/seed
      # The signature and its certificate are there when the build signs (a host booted from a
      # signed UKI then refuses a seed without them: kiln-identity.service checks it).
      for f in meta-data user-data network-config vendor-data kiln-identity.tar \
        kiln-identity.tar.sig kiln-seed-signer.crt; do
        if wget -q -O "/fetch/seed/$f" "$SEED$f"; then
          continue
        fi
        rm -f "/fetch/seed/$f"
        case "$f" in
          meta-data|user-data|kiln-identity.tar) fail "cannot fetch the seed's $f from $SEED$f" ;;
        esac
      done
      log "cloud-init seed fetched from $SEED ($(ls /fetch/seed | tr '\n' ' '))"
    fi
    ip addr flush dev "$IFACE"
    ip link set "$IFACE" down
    ROOTDEV=$(losetup -f)
    losetup -r "$ROOTDEV" /fetch/root.img || fail "cannot attach $ROOT to $ROOTDEV"
    BOOTDISK=
    ;;
  part:*)
    BOOTDISK=
    for i in $(seq 1 300); do
      BOOTDISK=$(find_disk) && break
      sleep 0.1
    done
    [ -n "$BOOTDISK" ] || fail "no disk with MBR signature ${DISK:-<any>} (kiln.disk)"
    ROOTDEV=$(part "$BOOTDISK" "${ROOT#part:}")
    for i in $(seq 1 100); do [ -b "$ROOTDEV" ] && break; sleep 0.1; done
    [ -b "$ROOTDEV" ] || fail "no root partition $ROOTDEV"
    ;;
  *) fail "kiln.root=$ROOT: expected part:N or an http:// URL" ;;
esac

log "opening $ROOTDEV with dm-verity, root hash $ROOTHASH"
veritysetup open "$ROOTDEV" kiln-root "$ROOTDEV" "$ROOTHASH" --hash-offset="$HASHOFFSET" ||
  fail "dm-verity refused $ROOTDEV (veritysetup open failed): root hash or hash tree does not match"
mount -t squashfs -o ro /dev/mapper/kiln-root /newroot ||
  fail "the root filesystem on $ROOTDEV failed verification (mount failed: its data or hash tree does not match the root hash)"
log "root verified and mounted read-only"

# /run is a tmpfs as systemd would mount it; the state lives below it, so the image needs no
# mount point of its own.
mount -t tmpfs -o mode=0755,nosuid,nodev,size=20% tmpfs /newroot/run
mkdir -p "$STATE"
if [ -n "$STATEPART" ] && [ -n "$BOOTDISK" ]; then
  STATEDEV=$(part "$BOOTDISK" "${STATEPART#part:}")
  for i in $(seq 1 50); do [ -b "$STATEDEV" ] && break; sleep 0.1; done
  [ "$(findfs LABEL=kiln-state 2>/dev/null)" = "$STATEDEV" ] ||
    fail "state partition $STATEDEV has no ext4 filesystem labelled kiln-state"
  mount -t ext4 -o rw,noatime "$STATEDEV" "$STATE" || fail "cannot mount state $STATEDEV"
  log "state on $STATEDEV"
else
  mount -t tmpfs -o mode=0755,size=50% tmpfs "$STATE"
  log "no state partition: changes stay in RAM"
fi

for d in etc var root home; do
  [ -d "/newroot/$d" ] || continue
  mkdir -p "$STATE/overlay/$d/upper" "$STATE/overlay/$d/work"
  mount -t overlay "overlay-$d" \
    -o "lowerdir=/newroot/$d,upperdir=$STATE/overlay/$d/upper,workdir=$STATE/overlay/$d/work" \
    "/newroot/$d" || fail "cannot mount the /$d overlay"
done
# Docker's and containerd's overlay2 snapshots cannot live on overlayfs: plain directories
# of the state filesystem, bind-mounted.
for d in docker containerd; do
  mkdir -p "$STATE/data/$d" "/newroot/var/lib/$d"
  mount --bind "$STATE/data/$d" "/newroot/var/lib/$d" || fail "cannot bind /var/lib/$d"
done
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /newroot/tmp
if [ -d /fetch/seed ]; then
  # cloud-init's NoCloud datasource reads this directory first (in its local stage, before
  # the network is configured, as with a cidata disk).
  mkdir -p /newroot/var/lib/cloud/seed/nocloud
  chmod 0700 /newroot/var/lib/cloud/seed/nocloud
  for f in /fetch/seed/*; do
    cat "$f" > "/newroot/var/lib/cloud/seed/nocloud/${f##*/}" || fail "cannot place the seed"
    chmod 0600 "/newroot/var/lib/cloud/seed/nocloud/${f##*/}"
  done
  rm -rf /fetch/seed
fi

for m in dev proc sys; do
  mount --move "/$m" "/newroot/$m" || mount -o move "/$m" "/newroot/$m"
done
log "switching to the image's /sbin/init"
exec switch_root /newroot /sbin/init
