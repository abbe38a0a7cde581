//! A GUID partition table (UEFI 2.10, chapter 5), written here: the protective MBR in sector
//! 0 (with boot code and a disk signature of kiln's), the primary header in sector 1 and its
//! 128 entries in sectors 2–33, and the backup entries and header in the disk's last 33
//! sectors. Everything in it is given or derived by the caller, so the same inputs give the
//! same bytes.

use crate::disk::{self, SECTOR};
use crate::{Error, Result};

/// Partition type: EFI system partition (`C12A7328-F81F-11D2-BA4B-00A0C93EC93B`).
pub const ESP_TYPE: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

/// Partition type: Linux filesystem data (`0FC63DAF-8483-4772-8E79-3D69D8477DE4`). Not one of
/// the Discoverable Partitions types (root, `/var`, …): systemd's `gpt-auto-generator` in the
/// booted image must not mount kiln's partitions on its own.
pub const LINUX_DATA_TYPE: &str = "0fc63daf-8483-4772-8e79-3d69d8477de4";

/// Attribute bit 2, "legacy BIOS bootable": syslinux's `gptmbr.bin` boots the partition that
/// has it.
pub const LEGACY_BIOS_BOOTABLE: u64 = 1 << 2;

/// Entries in each partition array, and the size of one.
const ENTRIES: u64 = 128;
const ENTRY_SIZE: u64 = 128;
/// Sectors of one partition entry array.
const ARRAY_SECTORS: u64 = ENTRIES * ENTRY_SIZE / SECTOR;

/// The first sector a partition may use (after the protective MBR, the header and the array).
pub const FIRST_USABLE: u64 = 2 + ARRAY_SECTORS;

/// Sectors at the end of the disk that hold the backup array and header.
pub const BACKUP_SECTORS: u64 = ARRAY_SECTORS + 1;

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPartition {
    /// Type GUID, as text (`c12a7328-…`).
    pub type_guid: String,
    /// The partition's own GUID, as text.
    pub guid: String,
    /// First sector.
    pub start: u64,
    /// Number of sectors.
    pub sectors: u64,
    /// Attribute bits ([`LEGACY_BIOS_BOOTABLE`]).
    pub attributes: u64,
    /// Name (at most 36 UTF-16 code units).
    pub name: String,
}

/// The bytes of a GPT: `head` for the disk's first [`FIRST_USABLE`] sectors, `tail` for its
/// last [`BACKUP_SECTORS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptBytes {
    pub head: Vec<u8>,
    pub tail: Vec<u8>,
}

/// A GUID's 16 bytes as GPT stores them (the first three fields little-endian) from its text
/// form.
pub fn guid_bytes(text: &str) -> Result<[u8; 16]> {
    let bad = || Error::invalid("GUID", format!("{text:?} is not a GUID"));
    let fields: Vec<&str> = text.split('-').collect();
    let lens: Vec<usize> = fields.iter().map(|f| f.len()).collect();
    if lens != [8, 4, 4, 4, 12] {
        return Err(bad());
    }
    let raw = hex::decode(fields.concat()).map_err(|_| bad())?;
    let mut b = [0u8; 16];
    b.copy_from_slice(&raw);
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    Ok(b)
}

/// CRC-32 (IEEE 802.3, reflected), as GPT's header and array checksums use.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The GPT of a disk of `disk_sectors` sectors holding `parts`, with `boot_code` and
/// `signature` in its protective MBR (the signature is how kiln's initramfs finds its disk).
pub fn gpt(
    boot_code: &[u8],
    signature: u32,
    disk_guid: &str,
    parts: &[GptPartition],
    disk_sectors: u64,
) -> Result<GptBytes> {
    let last = disk_sectors
        .checked_sub(1)
        .filter(|&l| l >= FIRST_USABLE + BACKUP_SECTORS)
        .ok_or_else(|| Error::invalid("GPT", format!("a disk of {disk_sectors} sectors")))?;
    let last_usable = last - BACKUP_SECTORS;
    if parts.len() as u64 > ENTRIES {
        return Err(Error::invalid("GPT", format!("{} partitions", parts.len())));
    }
    let mut array = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
    for (i, p) in parts.iter().enumerate() {
        let end = p.start + p.sectors;
        if p.sectors == 0 || p.start < FIRST_USABLE || end - 1 > last_usable {
            return Err(Error::invalid(
                "GPT",
                format!(
                    "partition {} ({}) at sectors {}..{end}: outside {FIRST_USABLE}..={last_usable}",
                    i + 1,
                    p.name,
                    p.start
                ),
            ));
        }
        let name: Vec<u16> = p.name.encode_utf16().collect();
        if name.len() > 36 {
            return Err(Error::invalid(
                "GPT",
                format!("partition name {:?}", p.name),
            ));
        }
        let e = &mut array[i * ENTRY_SIZE as usize..(i + 1) * ENTRY_SIZE as usize];
        e[0..16].copy_from_slice(&guid_bytes(&p.type_guid)?);
        e[16..32].copy_from_slice(&guid_bytes(&p.guid)?);
        e[32..40].copy_from_slice(&p.start.to_le_bytes());
        e[40..48].copy_from_slice(&(end - 1).to_le_bytes());
        e[48..56].copy_from_slice(&p.attributes.to_le_bytes());
        for (k, unit) in name.iter().enumerate() {
            e[56 + 2 * k..58 + 2 * k].copy_from_slice(&unit.to_le_bytes());
        }
    }
    let array_crc = crc32(&array);
    let disk_guid = guid_bytes(disk_guid)?;
    let header = |mine: u64, other: u64, entries_at: u64| {
        let mut h = vec![0u8; SECTOR as usize];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&mine.to_le_bytes());
        h[32..40].copy_from_slice(&other.to_le_bytes());
        h[40..48].copy_from_slice(&FIRST_USABLE.to_le_bytes());
        h[48..56].copy_from_slice(&last_usable.to_le_bytes());
        h[56..72].copy_from_slice(&disk_guid);
        h[72..80].copy_from_slice(&entries_at.to_le_bytes());
        h[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&array_crc.to_le_bytes());
        let crc = crc32(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    // The protective MBR: one partition of type 0xee over the whole disk (or as much of it as
    // 32 bits count), not active, as UEFI asks.
    let pmbr = disk::mbr(
        boot_code,
        signature,
        &[disk::Partition {
            kind: 0xee,
            active: false,
            start: 1,
            sectors: (disk_sectors - 1).min(u64::from(u32::MAX)),
        }],
    )?;
    let mut head = pmbr.to_vec();
    head.extend(header(1, last, 2));
    head.extend(&array);
    let mut tail = array;
    tail.extend(header(last, 1, last - ARRAY_SECTORS));
    Ok(GptBytes { head, tail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_are_stored_mixed_endian() {
        assert_eq!(
            hex::encode(guid_bytes(ESP_TYPE).unwrap()),
            "28732ac11ff8d211ba4b00a0c93ec93b"
        );
        assert!(guid_bytes("c12a7328-f81f-11d2-ba4b").is_err());
        assert!(guid_bytes("g12a7328-f81f-11d2-ba4b-00a0c93ec93b").is_err());
    }

    #[test]
    fn crc32_of_the_check_string() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn partitions_outside_the_usable_sectors_are_refused() {
        let p = GptPartition {
            type_guid: ESP_TYPE.into(),
            guid: ESP_TYPE.into(),
            start: 2048,
            sectors: 2048,
            attributes: 0,
            name: "x".into(),
        };
        assert!(gpt(&[], 1, ESP_TYPE, std::slice::from_ref(&p), 8192).is_ok());
        assert!(gpt(&[], 1, ESP_TYPE, &[p], 4096 + 32).is_err());
    }
}
