description="libsysext: corrupt image files (broken primary GPT with intact backup, both GPT headers broken, broken primary entry array, partition without a file system, truncated disk image, zeroed or damaged erofs superblock, truncated erofs, empty file) merge or fail as with systemd-sysext 257 (the backup GPT is used as libblkid does)"
# Messages differ on purpose: for a corrupt image systemd prints the errno of whichever
# libblkid or mount step failed ("Package not installed", "Bad message"); ours names the image,
# the part and what is wrong (issue 17, item 7).
stderr_compare=no
setup() {
    mkbase
    sysext good
    sysext_ddi dd
    cp "$R/var/lib/extensions/dd.raw" "$STAGE/dd.orig"
    sysext_raw erofs er
    cp "$R/var/lib/extensions/er.raw" "$STAGE/er.orig"
    rm -f "$R/var/lib/extensions/er.raw" "$R/var/lib/extensions/dd.raw"
}
# pyc CODE : run python CODE with the current image's path as argv[1]
pyc() { "${PYTHON:-python3}" -c "$1" "$R/var/lib/extensions/$X.raw"; }
# fresh NAME : the pristine image NAME (dd: GPT disk image, er: naked erofs) as the only .raw
fresh() { rm -f "$R"/var/lib/extensions/*.raw; cp "$STAGE/$1.orig" "$R/var/lib/extensions/$1.raw"; X=$1; }
c_ddi_ok() { fresh dd; }
c_primary_crc() { fresh dd; pyc 'import sys; f=open(sys.argv[1],"r+b"); f.seek(512+90); b=f.read(1); f.seek(512+90); f.write(bytes([b[0]^1]))'; }
c_both_crc() { fresh dd; pyc 'import sys,os; f=open(sys.argv[1],"r+b"); n=os.path.getsize(sys.argv[1]); 
for o in (512+90, n-512+90):
  f.seek(o); b=f.read(1); f.seek(o); f.write(bytes([b[0]^1]))'; }
c_entries_crc() { fresh dd; pyc 'import sys; f=open(sys.argv[1],"r+b"); f.seek(1024+40); b=f.read(1); f.seek(1024+40); f.write(bytes([b[0]^1]))'; }
c_zero_part() { fresh dd; pyc 'import sys,struct; f=open(sys.argv[1],"r+b"); f.seek(1024+32); first=struct.unpack("<Q",f.read(8))[0]; f.seek(first*512); f.write(bytes(8192))'; }
c_trunc_ddi() { fresh dd; truncate -s 40000 "$R/var/lib/extensions/$X.raw"; }
c_zero_sb() { fresh er; pyc 'import sys; f=open(sys.argv[1],"r+b"); f.seek(1024); f.write(bytes(128))'; }
c_trunc_erofs() { fresh er; truncate -s 4096 "$R/var/lib/extensions/$X.raw"; }
c_bad_erofs() { fresh er; pyc 'import sys; f=open(sys.argv[1],"r+b"); f.seek(1024+8); f.write(bytes([0xff]*40))'; }
c_empty() { rm -f "$R"/var/lib/extensions/*.raw; : > "$R/var/lib/extensions/er.raw"; }
steps="sh:c_ddi_ok merge:no unmerge sh:c_primary_crc merge:no unmerge sh:c_both_crc merge:no unmerge sh:c_entries_crc merge:no unmerge sh:c_zero_part merge:no unmerge sh:c_trunc_ddi merge:no unmerge sh:c_zero_sb merge:no unmerge sh:c_trunc_erofs merge:no unmerge sh:c_bad_erofs merge:no unmerge sh:c_empty merge:no unmerge"
