# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kiln_global_optspecs
    string join \n v/verbose h/help V/version
end

function __fish_kiln_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kiln_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kiln_using_subcommand
    set -l cmd (__fish_kiln_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kiln -n "__fish_kiln_needs_command" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kiln -n "__fish_kiln_needs_command" -s V -l version -d 'Print version'
complete -c kiln -n "__fish_kiln_needs_command" -f -a "init" -d 'Write the built-in demo spec as a commented starting point'
complete -c kiln -n "__fish_kiln_needs_command" -f -a "check" -d 'Validate a spec and print the resolved plan: per host its role, units, ports and files'
complete -c kiln -n "__fish_kiln_needs_command" -f -a "schema" -d 'Print the JSON Schema of the spec (for editors and CI)'
complete -c kiln -n "__fish_kiln_needs_command" -f -a "build" -d 'Build the images: one per role profile (base + one layer per component) plus the container images the units run, as an OCI layout (docker-archives on request)'
complete -c kiln -n "__fish_kiln_needs_command" -f -a "keys" -d 'Make a Secure Boot key set (PK, KEK, db) for a lab or a test'
complete -c kiln -n "__fish_kiln_needs_command" -f -a "boot" -d 'Boot the hosts of a build in QEMU and print their health table'
complete -c kiln -n "__fish_kiln_needs_command" -f -a "serve" -d 'Serve a build over HTTP for network provisioning: the PXE tree, cloud-init seeds, root images, kickstarts and OCI blobs'
complete -c kiln -n "__fish_kiln_needs_command" -f -a "push" -d 'Push every image of a build to a registry (OCI distribution API)'
complete -c kiln -n "__fish_kiln_needs_command" -f -a "lock" -d 'Resolve every source of a spec and write kiln.lock beside it (URL and sha256 of each)'
complete -c kiln -n "__fish_kiln_needs_command" -f -a "fetch" -d 'Fill the cache with every artifact of a spec ahead of a build (e.g. before going offline)'
complete -c kiln -n "__fish_kiln_needs_command" -f -a "cache" -d 'Manage the artifact cache'
complete -c kiln -n "__fish_kiln_needs_command" -f -a "render" -d 'Render every profile\'s file tree and every host\'s identity tree into a directory'
complete -c kiln -n "__fish_kiln_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kiln -n "__fish_kiln_using_subcommand init" -l force -d 'Overwrite an existing file'
complete -c kiln -n "__fish_kiln_using_subcommand init" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_using_subcommand init" -s h -l help -d 'Print help'
complete -c kiln -n "__fish_kiln_using_subcommand check" -l leave-out -d 'Leave upstream components out of the plan, with their units and ports: `mesos`, `marathon`, `calico`, or `upstream` for all three (for machines that cannot fetch their releases). The plan and the build report list what was left out; nothing stands in' -r -f -a "mesos\t''
marathon\t''
calico\t''
upstream\t''"
complete -c kiln -n "__fish_kiln_using_subcommand check" -l json -d 'Print the plan as JSON'
complete -c kiln -n "__fish_kiln_using_subcommand check" -l strict -d 'Treat warnings as errors'
complete -c kiln -n "__fish_kiln_using_subcommand check" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_using_subcommand check" -s h -l help -d 'Print help'
complete -c kiln -n "__fish_kiln_using_subcommand schema" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_using_subcommand schema" -s h -l help -d 'Print help'
complete -c kiln -n "__fish_kiln_using_subcommand build" -s o -l output -d 'Output directory' -r -F
complete -c kiln -n "__fish_kiln_using_subcommand build" -l threads -d 'Compression threads per layer (0: all cores). Output is identical for any value' -r
complete -c kiln -n "__fish_kiln_using_subcommand build" -l cache-max-size -d 'After the build, prune the cache to at most SIZE (`20G`, `512M`; `0`: never), least recently used first, keeping what the newest builds use [default: $KILN_CACHE_MAX_SIZE, else 20G]' -r
complete -c kiln -n "__fish_kiln_using_subcommand build" -l leave-out -d 'Leave upstream components out of the plan, with their units and ports: `mesos`, `marathon`, `calico`, or `upstream` for all three (for machines that cannot fetch their releases). The plan and the build report list what was left out; nothing stands in' -r -f -a "mesos\t''
marathon\t''
calico\t''
upstream\t''"
complete -c kiln -n "__fish_kiln_using_subcommand build" -l cache -d 'Artifact cache (default: $XDG_CACHE_HOME/kiln or ~/.cache/kiln)' -r -F
complete -c kiln -n "__fish_kiln_using_subcommand build" -l mirror -d 'Read upstream URLs from a mirror: https://HOST/PATH becomes MIRROR/HOST/PATH' -r
complete -c kiln -n "__fish_kiln_using_subcommand build" -l zstd -d 'Compress layers with zstd instead of gzip'
complete -c kiln -n "__fish_kiln_using_subcommand build" -l archives -d 'Also write a docker-archive per image under DIR/archives/ (for `docker load`)'
complete -c kiln -n "__fish_kiln_using_subcommand build" -l strict -d 'Treat warnings as errors'
complete -c kiln -n "__fish_kiln_using_subcommand build" -l no-wait -d 'When another kiln build is writing DIR, fail at once instead of waiting for it'
complete -c kiln -n "__fish_kiln_using_subcommand build" -l offline -d 'Use only the cache; fail listing every missing artifact'
complete -c kiln -n "__fish_kiln_using_subcommand build" -l locked -d 'Refuse any artifact that kiln.lock does not list'
complete -c kiln -n "__fish_kiln_using_subcommand build" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_using_subcommand build" -s h -l help -d 'Print help'
complete -c kiln -n "__fish_kiln_using_subcommand keys" -l name -d 'The certificates\' common name (each gets ` PK`, ` KEK` or ` db` added)' -r
complete -c kiln -n "__fish_kiln_using_subcommand keys" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_using_subcommand keys" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kiln -n "__fish_kiln_using_subcommand boot" -l host -d 'Boot only this host (repeatable)' -r
complete -c kiln -n "__fish_kiln_using_subcommand boot" -l timeout -d 'Seconds to wait for every check to pass' -r
complete -c kiln -n "__fish_kiln_using_subcommand boot" -l accel -d 'Accelerator: auto (KVM if a probe boot works, else TCG), kvm or tcg' -r -f -a "auto\t''
kvm\t''
tcg\t''"
complete -c kiln -n "__fish_kiln_using_subcommand boot" -l memory -d 'Memory per VM in MiB' -r
complete -c kiln -n "__fish_kiln_using_subcommand boot" -l cpus -d 'Virtual CPUs per VM (default: this machine\'s cores shared out among the VMs, 1 to 4)' -r
complete -c kiln -n "__fish_kiln_using_subcommand boot" -l run-dir -d 'Where overlays, serial logs and agent sockets go (default: a new dir under $TMPDIR)' -r -F
complete -c kiln -n "__fish_kiln_using_subcommand boot" -l start -d 'How the VMs start: together (the default) or staggered (each once the one before it is past its kernel, at most 60 s apart). On 2 cores under TCG both took about as long (docs/design/boot-facts.md)' -r -f -a "together\t''
staggered\t''"
complete -c kiln -n "__fish_kiln_using_subcommand boot" -l firmware -d 'Firmware: bios (SeaBIOS; syslinux from the disk\'s protective MBR), uefi (OVMF, Debian `ovmf`; the unified kernel image from the disk\'s EFI system partition) or uefi-secure (OVMF enforcing Secure Boot with the build\'s certificates enrolled, made with `virt-fw-vars` from PyPI `virt-firmware`; needs a build with [boot.secure_boot]). HOST=FIRMWARE sets one host\'s (repeat for more). Every disk boots on bios and uefi. Default: uefi-secure for a signed build, else bios' -r
complete -c kiln -n "__fish_kiln_using_subcommand boot" -l all -d 'Boot every host of the build (the default when no --host is given)'
complete -c kiln -n "__fish_kiln_using_subcommand boot" -l json -d 'Print the result as JSON on stdout (the table goes to stderr)'
complete -c kiln -n "__fish_kiln_using_subcommand boot" -l timeline -d 'Also print each host\'s boot timeline: kernel start, initramfs, switch-root, each unit active, healthy (seconds after its QEMU started), and the critical chain of the unit that came up last. `--json` always carries it (`hosts[].timeline`)'
complete -c kiln -n "__fish_kiln_using_subcommand boot" -l keep -d 'Leave the VMs running; prints their PIDs, consoles and agent sockets'
complete -c kiln -n "__fish_kiln_using_subcommand boot" -l tpm -d 'Give every VM a TPM 2.0 (Debian `swtpm`): with uefi or uefi-secure, the health table then checks that PCR 11 holds the value `kiln build` computed from the UKI (measured boot)'
complete -c kiln -n "__fish_kiln_using_subcommand boot" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_using_subcommand boot" -s h -l help -d 'Print help'
complete -c kiln -n "__fish_kiln_using_subcommand serve" -l listen -d 'Address to listen on, IP:PORT (the host part of provision.url, usually)' -r
complete -c kiln -n "__fish_kiln_using_subcommand serve" -l max-per-peer -d 'Connections one client address may hold at once; more are answered 503 at once. Raise it when many hosts reach the server through one NAT address' -r
complete -c kiln -n "__fish_kiln_using_subcommand serve" -l trust-any-peer -d 'Serve every host\'s seed, seed ISO and kickstart (SSH keys, root\'s password hash) to any client, not only to the host\'s own address. For labs and NAT, where hosts do not reach the server from their spec addresses (QEMU\'s user network shows every guest as one address); logged as a warning'
complete -c kiln -n "__fish_kiln_using_subcommand serve" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_using_subcommand serve" -s h -l help -d 'Print help'
complete -c kiln -n "__fish_kiln_using_subcommand push" -l to -d 'Destination `REGISTRY/PREFIX`' -r
complete -c kiln -n "__fish_kiln_using_subcommand push" -l insecure -d 'Plain HTTP (a registry without TLS)'
complete -c kiln -n "__fish_kiln_using_subcommand push" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_using_subcommand push" -s h -l help -d 'Print help'
complete -c kiln -n "__fish_kiln_using_subcommand lock" -l leave-out -d 'Leave upstream components out of the plan, with their units and ports: `mesos`, `marathon`, `calico`, or `upstream` for all three (for machines that cannot fetch their releases). The plan and the build report list what was left out; nothing stands in' -r -f -a "mesos\t''
marathon\t''
calico\t''
upstream\t''"
complete -c kiln -n "__fish_kiln_using_subcommand lock" -l cache -d 'Artifact cache (default: $XDG_CACHE_HOME/kiln or ~/.cache/kiln)' -r -F
complete -c kiln -n "__fish_kiln_using_subcommand lock" -l mirror -d 'Read upstream URLs from a mirror: https://HOST/PATH becomes MIRROR/HOST/PATH' -r
complete -c kiln -n "__fish_kiln_using_subcommand lock" -l offline -d 'Use only the cache; fail listing every missing artifact'
complete -c kiln -n "__fish_kiln_using_subcommand lock" -l locked -d 'Refuse any artifact that kiln.lock does not list'
complete -c kiln -n "__fish_kiln_using_subcommand lock" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_using_subcommand lock" -s h -l help -d 'Print help'
complete -c kiln -n "__fish_kiln_using_subcommand fetch" -l leave-out -d 'Leave upstream components out of the plan, with their units and ports: `mesos`, `marathon`, `calico`, or `upstream` for all three (for machines that cannot fetch their releases). The plan and the build report list what was left out; nothing stands in' -r -f -a "mesos\t''
marathon\t''
calico\t''
upstream\t''"
complete -c kiln -n "__fish_kiln_using_subcommand fetch" -l cache -d 'Artifact cache (default: $XDG_CACHE_HOME/kiln or ~/.cache/kiln)' -r -F
complete -c kiln -n "__fish_kiln_using_subcommand fetch" -l mirror -d 'Read upstream URLs from a mirror: https://HOST/PATH becomes MIRROR/HOST/PATH' -r
complete -c kiln -n "__fish_kiln_using_subcommand fetch" -l offline -d 'Use only the cache; fail listing every missing artifact'
complete -c kiln -n "__fish_kiln_using_subcommand fetch" -l locked -d 'Refuse any artifact that kiln.lock does not list'
complete -c kiln -n "__fish_kiln_using_subcommand fetch" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_using_subcommand fetch" -s h -l help -d 'Print help'
complete -c kiln -n "__fish_kiln_using_subcommand cache; and not __fish_seen_subcommand_from import prune help" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_using_subcommand cache; and not __fish_seen_subcommand_from import prune help" -s h -l help -d 'Print help'
complete -c kiln -n "__fish_kiln_using_subcommand cache; and not __fish_seen_subcommand_from import prune help" -f -a "import" -d 'Add files to the cache by their sha256 (for air-gapped sites and --offline builds)'
complete -c kiln -n "__fish_kiln_using_subcommand cache; and not __fish_seen_subcommand_from import prune help" -f -a "prune" -d 'Remove cache entries the newest builds do not use: bootable outputs, layers, sources'
complete -c kiln -n "__fish_kiln_using_subcommand cache; and not __fish_seen_subcommand_from import prune help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kiln -n "__fish_kiln_using_subcommand cache; and __fish_seen_subcommand_from import" -l cache -d 'Artifact cache (default: $XDG_CACHE_HOME/kiln or ~/.cache/kiln)' -r -F
complete -c kiln -n "__fish_kiln_using_subcommand cache; and __fish_seen_subcommand_from import" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_using_subcommand cache; and __fish_seen_subcommand_from import" -s h -l help -d 'Print help'
complete -c kiln -n "__fish_kiln_using_subcommand cache; and __fish_seen_subcommand_from prune" -l older-than -d 'Remove entries not used for this long (`30d`, `12h`, `90m`, `2w`)' -r
complete -c kiln -n "__fish_kiln_using_subcommand cache; and __fish_seen_subcommand_from prune" -l max-size -d 'Remove the least recently used entries until the cache holds at most SIZE (`20G`, `512M`)' -r
complete -c kiln -n "__fish_kiln_using_subcommand cache; and __fish_seen_subcommand_from prune" -l keep-builds -d 'Keep what the newest build into each of the N most recently built output directories used' -r
complete -c kiln -n "__fish_kiln_using_subcommand cache; and __fish_seen_subcommand_from prune" -l cache -d 'Artifact cache (default: $XDG_CACHE_HOME/kiln or ~/.cache/kiln)' -r -F
complete -c kiln -n "__fish_kiln_using_subcommand cache; and __fish_seen_subcommand_from prune" -l dry-run -d 'Only list what would be removed'
complete -c kiln -n "__fish_kiln_using_subcommand cache; and __fish_seen_subcommand_from prune" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_using_subcommand cache; and __fish_seen_subcommand_from prune" -s h -l help -d 'Print help'
complete -c kiln -n "__fish_kiln_using_subcommand cache; and __fish_seen_subcommand_from help" -f -a "import" -d 'Add files to the cache by their sha256 (for air-gapped sites and --offline builds)'
complete -c kiln -n "__fish_kiln_using_subcommand cache; and __fish_seen_subcommand_from help" -f -a "prune" -d 'Remove cache entries the newest builds do not use: bootable outputs, layers, sources'
complete -c kiln -n "__fish_kiln_using_subcommand cache; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kiln -n "__fish_kiln_using_subcommand render" -s o -l output -d 'Output directory' -r -F
complete -c kiln -n "__fish_kiln_using_subcommand render" -l leave-out -d 'Leave upstream components out of the plan, with their units and ports: `mesos`, `marathon`, `calico`, or `upstream` for all three (for machines that cannot fetch their releases). The plan and the build report list what was left out; nothing stands in' -r -f -a "mesos\t''
marathon\t''
calico\t''
upstream\t''"
complete -c kiln -n "__fish_kiln_using_subcommand render" -l strict -d 'Treat warnings as errors'
complete -c kiln -n "__fish_kiln_using_subcommand render" -s v -l verbose -d 'More log output (repeat for more); KILN_LOG=debug works too'
complete -c kiln -n "__fish_kiln_using_subcommand render" -s h -l help -d 'Print help'
complete -c kiln -n "__fish_kiln_using_subcommand help; and not __fish_seen_subcommand_from init check schema build keys boot serve push lock fetch cache render help" -f -a "init" -d 'Write the built-in demo spec as a commented starting point'
complete -c kiln -n "__fish_kiln_using_subcommand help; and not __fish_seen_subcommand_from init check schema build keys boot serve push lock fetch cache render help" -f -a "check" -d 'Validate a spec and print the resolved plan: per host its role, units, ports and files'
complete -c kiln -n "__fish_kiln_using_subcommand help; and not __fish_seen_subcommand_from init check schema build keys boot serve push lock fetch cache render help" -f -a "schema" -d 'Print the JSON Schema of the spec (for editors and CI)'
complete -c kiln -n "__fish_kiln_using_subcommand help; and not __fish_seen_subcommand_from init check schema build keys boot serve push lock fetch cache render help" -f -a "build" -d 'Build the images: one per role profile (base + one layer per component) plus the container images the units run, as an OCI layout (docker-archives on request)'
complete -c kiln -n "__fish_kiln_using_subcommand help; and not __fish_seen_subcommand_from init check schema build keys boot serve push lock fetch cache render help" -f -a "keys" -d 'Make a Secure Boot key set (PK, KEK, db) for a lab or a test'
complete -c kiln -n "__fish_kiln_using_subcommand help; and not __fish_seen_subcommand_from init check schema build keys boot serve push lock fetch cache render help" -f -a "boot" -d 'Boot the hosts of a build in QEMU and print their health table'
complete -c kiln -n "__fish_kiln_using_subcommand help; and not __fish_seen_subcommand_from init check schema build keys boot serve push lock fetch cache render help" -f -a "serve" -d 'Serve a build over HTTP for network provisioning: the PXE tree, cloud-init seeds, root images, kickstarts and OCI blobs'
complete -c kiln -n "__fish_kiln_using_subcommand help; and not __fish_seen_subcommand_from init check schema build keys boot serve push lock fetch cache render help" -f -a "push" -d 'Push every image of a build to a registry (OCI distribution API)'
complete -c kiln -n "__fish_kiln_using_subcommand help; and not __fish_seen_subcommand_from init check schema build keys boot serve push lock fetch cache render help" -f -a "lock" -d 'Resolve every source of a spec and write kiln.lock beside it (URL and sha256 of each)'
complete -c kiln -n "__fish_kiln_using_subcommand help; and not __fish_seen_subcommand_from init check schema build keys boot serve push lock fetch cache render help" -f -a "fetch" -d 'Fill the cache with every artifact of a spec ahead of a build (e.g. before going offline)'
complete -c kiln -n "__fish_kiln_using_subcommand help; and not __fish_seen_subcommand_from init check schema build keys boot serve push lock fetch cache render help" -f -a "cache" -d 'Manage the artifact cache'
complete -c kiln -n "__fish_kiln_using_subcommand help; and not __fish_seen_subcommand_from init check schema build keys boot serve push lock fetch cache render help" -f -a "render" -d 'Render every profile\'s file tree and every host\'s identity tree into a directory'
complete -c kiln -n "__fish_kiln_using_subcommand help; and not __fish_seen_subcommand_from init check schema build keys boot serve push lock fetch cache render help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c kiln -n "__fish_kiln_using_subcommand help; and __fish_seen_subcommand_from cache" -f -a "import" -d 'Add files to the cache by their sha256 (for air-gapped sites and --offline builds)'
complete -c kiln -n "__fish_kiln_using_subcommand help; and __fish_seen_subcommand_from cache" -f -a "prune" -d 'Remove cache entries the newest builds do not use: bootable outputs, layers, sources'
