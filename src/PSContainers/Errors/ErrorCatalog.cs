using System.Management.Automation;
using System.Text;

namespace PSContainers.Errors;

/// <summary>
/// One error id the module reports: its usual category (with others a failure's cause may give it,
/// e.g. PermissionDenied for EPERM), and what the user should do about it.
/// </summary>
public sealed record ErrorCatalogEntry(string Id, ErrorCategory Category, string Action, params ErrorCategory[] OtherCategories)
{
    public bool Allows(ErrorCategory category) => category == Category || OtherCategories.Contains(category);
}

/// <summary>
/// Every ErrorRecord id PSContainers emits (the runtime's ContainerException ids and the cmdlets'
/// own), listed once. about_PSContainers' ERROR IDS section is rendered from it, and a test keeps
/// the catalog, the ids in the source and that section equal (ErrorCatalogTests). An error record
/// carries its entry's action as ErrorDetails.RecommendedAction.
/// </summary>
public static class ErrorCatalog
{
    public static IReadOnlyList<ErrorCatalogEntry> Entries { get; } = new ErrorCatalogEntry[]
    {
        new("AddressExists", ErrorCategory.ResourceExists, "The address is already on that link: leave it, or remove it first with Remove-NetworkAddress."),
        new("AddressNotFound", ErrorCategory.ObjectNotFound, "Get-NetworkAddress lists the link's addresses; give one of those."),
        new("AddressWithoutPrefix", ErrorCategory.InvalidArgument, "Write the address with its prefix length, e.g. 10.0.0.2/24 or fd00::2/64."),
        new("AmbiguousLocation", ErrorCategory.InvalidArgument, "Give either the network namespace parameter or the container parameter, not both."),
        new("ArchiveChanged", ErrorCategory.InvalidData, "The archive was replaced or grew while it was imported; import it again once nothing writes to it."),
        new("ArchiveCorrupt", ErrorCategory.InvalidData, "The archive is truncated or damaged; nothing was imported. Copy or export it again."),
        new("ArchiveEntryUnsafe", ErrorCategory.InvalidData, "The archive holds an entry that would escape the container (absolute path, .., a link out, a device as non-root). Do not trust it; make the archive again from a trusted source."),
        new("ArchiveNotFound", ErrorCategory.ObjectNotFound, "Check the path of the archive."),
        new("ArchiveTooLarge", ErrorCategory.LimitsExceeded, "Raise -MaximumSize if you trust the archive, or free space on the store's filesystem."),
        new("ArchiveUnsupported", ErrorCategory.InvalidData, "Make the archive again without sparse files or unusual entry types (plain tar, tar.gz or tar.zst)."),
        new("AttachFailed", ErrorCategory.InvalidOperation, "The command could not enter the container: check it is running (Get-Container) and read the helper's message."),
        new("AutostartFailed", ErrorCategory.DeviceError, "A file of the container could not be read or written while it was started or stopped; check the disk and the store's permissions, then run the command again (the others were carried on with)."),
        new("AutostartServiceNotInstalled", ErrorCategory.ObjectNotFound, "There is no unit to remove at that path; give -Path where Install-ContainerAutostartService wrote it."),
        new("AutostartUnitDirectoryNotFound", ErrorCategory.ObjectNotFound, "Give a -Path in an existing directory (systemd's is /etc/systemd/system)."),
        new("BackendUnavailable", ErrorCategory.InvalidOperation, "Choose another -Backend (dir works everywhere), or put the store on a filesystem that supports this one (btrfs, overlay).", ErrorCategory.InvalidArgument, ErrorCategory.NotInstalled),
        new("BridgeNotFound", ErrorCategory.ObjectNotFound, "Create the bridge first (New-NetworkBridge), or fix the bridge name in the container's config.yaml."),
        new("BusyboxListFailed", ErrorCategory.InvalidOperation, "Use a busybox build that supports --list-full: apt-get install busybox-static."),
        new("BusyboxNotFound", ErrorCategory.NotInstalled, "Install a statically linked busybox (apt-get install busybox-static) or set $env:PSCONTAINERS_BUSYBOX to one."),
        new("BusyboxNotStatic", ErrorCategory.NotInstalled, "Use a statically linked busybox (apt-get install busybox-static), or set $env:PSCONTAINERS_BUSYBOX to one."),
        new("CacheDirectoryMissing", ErrorCategory.InvalidArgument, "Give the debootstrap template a cache directory (TemplateOptions.CacheDirectory)."),
        new("CgroupBusy", ErrorCategory.ResourceBusy, "Processes of an earlier run are still in the cgroup: Stop-Container -Kill, then try again."),
        new("CgroupControllerUnavailable", ErrorCategory.NotInstalled, "Enable or mount that cgroup controller on the host, or remove the limit that needs it."),
        new("CgroupCpusNotOnline", ErrorCategory.InvalidArgument, "Give only CPUs or memory nodes this machine has online (see /sys/devices/system/cpu/online)."),
        new("CgroupDeviceProgramFailed", ErrorCategory.InvalidOperation, "The device eBPF program could not be loaded or attached; run as root on a kernel with cgroup BPF, and read the verifier's message.", ErrorCategory.PermissionDenied),
        new("CgroupDeviceProgramForeign", ErrorCategory.ResourceExists, "Another tool attached a device program to this cgroup; remove it, or manage this cgroup's devices with that tool."),
        new("CgroupDeviceProgramUnreadable", ErrorCategory.PermissionDenied, "The kernel hides BPF instructions (kernel.kptr_restrict=2); lower it to read the device rules."),
        new("CgroupExists", ErrorCategory.ResourceExists, "Choose another path, or use the existing cgroup."),
        new("CgroupFileMissing", ErrorCategory.NotInstalled, "This kernel's cgroup v1 controller lacks that feature; remove the limit, or use a kernel or layout (cgroup v2) that has it."),
        new("CgroupIOError", ErrorCategory.WriteError, "A cgroup file could not be read or written; check the path and that you may write under it (root, or a delegated subtree)."),
        new("CgroupLimitUnsupported", ErrorCategory.InvalidArgument, "This limit has no cgroup v1 equivalent here; use the suggested alternative or a cgroup v2 host."),
        new("CgroupNotDelegated", ErrorCategory.PermissionDenied, "Start it from a delegated cgroup (systemd-run --user --scope -p Delegate=yes pwsh), or remove its limits."),
        new("CgroupNotFound", ErrorCategory.ObjectNotFound, "Check the cgroup path (Get-Cgroup lists them), or create it with New-Cgroup."),
        new("CgroupReadFailed", ErrorCategory.DeviceError, "A cgroup file could not be read; check the cgroup still exists and the kernel exposes that file."),
        new("CgroupWriteFailed", ErrorCategory.InvalidOperation, "The kernel refused the cgroup write; read its reason in the message, and check the value and your permission.", ErrorCategory.PermissionDenied, ErrorCategory.InvalidArgument, ErrorCategory.ResourceBusy, ErrorCategory.DeviceError),
        new("CheckpointExists", ErrorCategory.ResourceExists, "Checkpoint into a new or empty directory."),
        new("CheckpointFailed", ErrorCategory.InvalidOperation, "CRIU could not dump the container; its log (named in the message) says why. Fix that (often an unsupported resource) and try again."),
        new("CheckpointIncomplete", ErrorCategory.InvalidData, "The checkpoint was interrupted; remove its directory and checkpoint again."),
        new("CheckpointNotFound", ErrorCategory.ObjectNotFound, "Give the directory Checkpoint-Container wrote."),
        new("CheckpointPathInvalid", ErrorCategory.InvalidArgument, "Give a directory path (new or empty) for the checkpoint."),
        new("CheckpointUnsupported", ErrorCategory.NotImplemented, "Remove what CRIU cannot checkpoint (named in the message) from the container, or stop and start it instead."),
        new("CheckpointSupportMissing", ErrorCategory.InvalidOperation, "Open the store with PSContainers.Runtime.Composition.ContainerRuntime.Open (the cmdlets do): a saved container is started by restoring its checkpoint."),
        new("CommandNotFound", ErrorCategory.ObjectNotFound, "Give the program and each argument as separate strings (-Command ls,-l,/), or run a shell: -Command sh,-c,'...'."),
        new("CommandTimeout", ErrorCategory.OperationTimeout, "The command ran past -Timeout and was killed with its process group; raise -Timeout, or check what it waits for."),
        new("ConfigAccessDenied", ErrorCategory.PermissionDenied, "You may not read the config file; run as its owner or fix its permissions."),
        new("ConfigKeyInvalid", ErrorCategory.InvalidArgument, "Write the config.yaml key names joined by dots, with [n] for a list item (limits.memory, init.command, network[0].bridge)."),
        new("ConfigKeyNotFound", ErrorCategory.ObjectNotFound, "Get-ContainerConfig shows the container's config; name a key it has, or set the whole section or list."),
        new("ConfigNotFound", ErrorCategory.ObjectNotFound, "Check the config file's path."),
        new("ConfigReadFailed", ErrorCategory.DeviceError, "The config file could not be read; check the disk and the file."),
        new("ConfigValueInvalid", ErrorCategory.InvalidArgument, "Give text, a number, $true/$false, an array or a hashtable, nested at most a few levels."),
        new("ConfigValueMissing", ErrorCategory.InvalidArgument, "Give -Value, or -Remove to unset the key."),
        new("ConflictingParameters", ErrorCategory.InvalidArgument, "Give only one of the parameters the message names."),
        new("ContainerAccountInvalid", ErrorCategory.InvalidData, "Fix the container's /etc/passwd or /etc/group, or give numeric ids."),
        new("ContainerAlreadyFrozen", ErrorCategory.InvalidOperation, "Nothing to do; Resume-Container thaws it."),
        new("ContainerAlreadyRunning", ErrorCategory.InvalidOperation, "Stop it first (Stop-Container), or use Restart-Container."),
        new("ContainerBusy", ErrorCategory.ResourceBusy, "Another operation holds the container's lock; wait for it to finish and try again."),
        new("ContainerEphemeral", ErrorCategory.InvalidOperation, "Copy it to a normal container first (Copy-Container), then move that."),
        new("ContainerExists", ErrorCategory.ResourceExists, "Choose another name, or remove the existing container first (Remove-Container)."),
        new("ContainerFrozen", ErrorCategory.InvalidOperation, "Resume it first (Resume-Container)."),
        new("ContainerGroupNotFound", ErrorCategory.ObjectNotFound, "Give a group in the container's /etc/group, or a numeric gid."),
        new("ContainerHasClones", ErrorCategory.InvalidOperation, "Remove its snapshot clones first, or use -Force (they will not start any more)."),
        new("ContainerHasNoCgroup", ErrorCategory.InvalidOperation, "It was started without a cgroup of its own; start it again from a delegated cgroup to freeze or limit it."),
        new("ContainerIOError", ErrorCategory.WriteError, "A file of the store could not be read or written; check the disk, free space and the store's permissions."),
        new("ContainerJobFailed", ErrorCategory.NotSpecified, "An unexpected error ended the background job; Receive-Job shows it. Report it if it persists."),
        new("ContainerModeUndecided", ErrorCategory.InvalidArgument, "Give the container's config.yaml the idMap its rootfs was made for, or privileged: true if its rootfs is host-owned."),
        new("ContainerNameRequired", ErrorCategory.InvalidArgument, "Give the container's name with -Name."),
        new("ContainerNotFound", ErrorCategory.ObjectNotFound, "Get-Container lists the containers of this store; check the name and -StorePath."),
        new("ContainerNotFrozen", ErrorCategory.InvalidOperation, "Nothing to do: it is not frozen."),
        new("ContainerNotRunning", ErrorCategory.InvalidOperation, "Start it first (Start-Container), or resume it if it is frozen."),
        new("ContainerNotStopped", ErrorCategory.InvalidOperation, "Stop it first (Stop-Container)."),
        new("ContainerRunning", ErrorCategory.InvalidOperation, "Stop it first, or use -Force to kill and remove it."),
        new("ContainerSaved", ErrorCategory.InvalidOperation, "Start-Container resumes a saved container; start it first, or discard its checkpoint."),
        new("ContainerUserNotFound", ErrorCategory.ObjectNotFound, "Give a user in the container's /etc/passwd, or a numeric uid."),
        new("CopyDestinationExists", ErrorCategory.ResourceExists, "Add -Force to replace existing files, or copy to another path; a directory in the way is never replaced."),
        new("CopyDestinationInsideSource", ErrorCategory.InvalidArgument, "Choose a destination outside the source tree."),
        new("CopyDestinationNotEmpty", ErrorCategory.ResourceExists, "Remove the destination or choose another one."),
        new("CopySourceNotDirectory", ErrorCategory.ObjectNotFound, "Give the path of an existing real directory (symlinks are not followed)."),
        new("CopyUnknownFileType", ErrorCategory.InvalidData, "Remove the file of unknown type from the source tree."),
        new("CorruptState", ErrorCategory.InvalidData, "If the container is not running, delete its state.json to reset its state."),
        new("CriuCheckFailed", ErrorCategory.InvalidOperation, "This kernel lacks what CRIU needs ('criu check' says what); use a kernel with checkpoint/restore support."),
        new("CriuNotFound", ErrorCategory.NotInstalled, "Install CRIU (a version the message names) or set $env:PSCONTAINERS_CRIU to it."),
        new("CriuTimeout", ErrorCategory.OperationTimeout, "CRIU did not answer in time; read its log, raise -Timeout, or retry."),
        new("CriuTooOld", ErrorCategory.NotInstalled, "Install a newer CRIU (the message names the minimum)."),
        new("CriuUnusable", ErrorCategory.DeviceError, "CRIU could not be run or went away; read its log and reinstall it if needed."),
        new("DebootstrapCleanupFailed", ErrorCategory.ResourceBusy, "Unmount what is still mounted in the failed build (umount -R) and delete the directory."),
        new("DebootstrapFailed", ErrorCategory.InvalidOperation, "Check the release name, the mirror URL and network access (set http_proxy for a proxy); the message has debootstrap's last lines."),
        new("DebootstrapNeedsRoot", ErrorCategory.PermissionDenied, "Run PowerShell as root (sudo pwsh) to build a debootstrap rootfs."),
        new("DebootstrapNotInstalled", ErrorCategory.NotInstalled, "Install debootstrap: apt-get install debootstrap."),
        new("DebootstrapStartFailed", ErrorCategory.NotInstalled, "debootstrap could not be started; reinstall it: apt-get install debootstrap."),
        new("DestinationNotDirectory", ErrorCategory.InvalidArgument, "Copying several items needs a directory as -Destination; give one (it is created if missing)."),
        new("DeviceNotFound", ErrorCategory.ObjectNotFound, "Give a block device this machine has (lsblk lists them)."),
        new("DeviceRuleNeedsRestart", ErrorCategory.InvalidOperation, "Save the rule with -Persist and restart the container, or give specific device rules."),
        new("DirectoryNeedsRecurse", ErrorCategory.InvalidArgument, "Add -Recurse to copy a directory with its contents."),
        new("FreezeTimeout", ErrorCategory.OperationTimeout, "A task did not freeze in time (often stuck in the kernel); try again, or stop the container."),
        new("FreezerUnavailable", ErrorCategory.NotInstalled, "Mount cgroup v2 or the v1 freezer controller to freeze containers."),
        new("GatewayUnreachable", ErrorCategory.InvalidArgument, "Add an address in the gateway's subnet to a link first, then the route."),
        new("HelperNotFound", ErrorCategory.NotInstalled, "Rebuild the module (dotnet build -c Release) or set $env:PSCONTAINERS_HELPER to psc-helper."),
        new("HelperProtocolError", ErrorCategory.InvalidData, "psc-helper and the runtime are from different builds: rebuild the module (dotnet build -c Release), or point $env:PSCONTAINERS_HELPER at the helper built with it."),
        new("HostAccessNotKept", ErrorCategory.InvalidOperation, "Remove the host-access settings from the container's config, or allow them on the destination, then move it again."),
        new("HostCheckIOError", ErrorCategory.WriteError, "A host file could not be read; check the path and permissions the message names."),
        new("HugePageSizeUnavailable", ErrorCategory.InvalidArgument, "Use a huge page size this kernel has (see /sys/kernel/mm/hugepages)."),
        new("IdMapRefused", ErrorCategory.PermissionDenied, "Map only host ids /etc/subuid and /etc/subgid grant you (Get-SubordinateIdRange); root adds ranges with Add-SubordinateIdRange."),
        new("IdNotMapped", ErrorCategory.InvalidArgument, "Give an owner and group inside the container's id map (Get-ContainerConfig -Key idMap)."),
        new("IdentityFileNotFound", ErrorCategory.ObjectNotFound, "Check the path given to -IdentityFile."),
        new("InputConflict", ErrorCategory.InvalidArgument, "Give the command's input from the pipeline or with -InputFile, not both."),
        new("InvalidAddress", ErrorCategory.InvalidArgument, "Write an IPv4 or IPv6 address with a valid prefix length, e.g. 10.0.0.2/24."),
        new("InvalidArgument", ErrorCategory.InvalidArgument, "Fix the parameter value the message names."),
        new("InvalidBridgeSettings", ErrorCategory.InvalidData, "Fix the default bridge's settings file (network.json) as the message says.", ErrorCategory.InvalidArgument),
        new("InvalidCapability", ErrorCategory.InvalidArgument, "Use a capability name from capabilities(7), e.g. CAP_NET_ADMIN."),
        new("InvalidCgroupLimit", ErrorCategory.InvalidArgument, "Give the limit in the form the message shows (sizes like 512MB, CPU counts like 1.5, max)."),
        new("InvalidCgroupPath", ErrorCategory.InvalidArgument, "Give a relative cgroup path like 'mygroup' or 'parent/child', without '.' or '..'."),
        new("InvalidCheckpoint", ErrorCategory.InvalidData, "The checkpoint directory is damaged or from an incompatible version; checkpoint again."),
        new("InvalidConfig", ErrorCategory.InvalidArgument, "Fix config.yaml at the line and column the message gives (about_PSContainers, CONFIG.YAML, lists the keys)."),
        new("InvalidContainerName", ErrorCategory.InvalidArgument, "Use at most 64 letters, digits, '_', '.' and '-', starting with a letter or digit."),
        new("InvalidDestination", ErrorCategory.InvalidArgument, "Give a store path or ssh://[user@]host[:port]/store/path."),
        new("InvalidDeviceRule", ErrorCategory.InvalidArgument, "Write device rules as 'TYPE MAJOR:MINOR ACCESS', e.g. 'c 1:3 rwm' or 'a'."),
        new("InvalidIdMap", ErrorCategory.InvalidArgument, "Give an id map whose ranges do not overlap and whose uid and gid ranges end at the same container id."),
        new("InvalidLinkName", ErrorCategory.InvalidArgument, "Use 1-15 bytes without '/', ':' or spaces for a link name."),
        new("InvalidMacAddress", ErrorCategory.InvalidArgument, "Write a unicast MAC address of six hex bytes, e.g. 00:16:3e:12:34:56."),
        new("InvalidManifest", ErrorCategory.ParserError, "Fix the manifest at the file, line and column the message gives (Get-Help Invoke-ContainerManifest shows the keys; a container's body takes the keys of config.yaml)."),
        new("InvalidMirror", ErrorCategory.InvalidArgument, "Give an http://, https:// or file:// mirror URL."),
        new("InvalidMtu", ErrorCategory.InvalidArgument, "Use an MTU of 68-65535."),
        new("InvalidNetNamespaceName", ErrorCategory.InvalidArgument, "Use 1-255 bytes without '/', and not '.' or '..'."),
        new("InvalidNetworkConfig", ErrorCategory.InvalidArgument, "Fix the network entry as the message says (a non-root user's veth cannot set addresses from outside)."),
        new("InvalidPath", ErrorCategory.InvalidArgument, "Give a valid path."),
        new("InvalidRelease", ErrorCategory.InvalidArgument, "Give a Debian release name such as bookworm or stable."),
        new("InvalidRemoteModule", ErrorCategory.InvalidArgument, "Give a module name or path without control characters."),
        new("InvalidRemotePowerShell", ErrorCategory.InvalidArgument, "Give a remote PowerShell command without control characters."),
        new("InvalidRoute", ErrorCategory.InvalidArgument, "A route needs a gateway or a device, of the destination's address family."),
        new("InvalidSignal", ErrorCategory.InvalidArgument, "Give a signal name (SIGTERM, TERM) or number (15)."),
        new("InvalidSize", ErrorCategory.InvalidArgument, "Give a size like 512MB, 2GB or a number of bytes."),
        new("InvalidSshOption", ErrorCategory.InvalidArgument, "Write ssh options as Key=Value, and not ones Move-Container sets itself."),
        new("InvalidSubordinateIdRange", ErrorCategory.InvalidArgument, "Give a count of at least 1 (and -Start when removing by count)."),
        new("InvalidUser", ErrorCategory.InvalidArgument, "Give a user name or uid."),
        new("InvalidUsernetFile", ErrorCategory.ParserError, "Fix the usernet file at the line the message gives (lines are: user type bridge count)."),
        new("InvalidVariant", ErrorCategory.InvalidArgument, "Give a debootstrap variant: minbase, buildd or fakechroot."),
        new("InvalidVlanId", ErrorCategory.InvalidArgument, "Use a VLAN id of 0-4094."),
        new("ItemNotFound", ErrorCategory.ObjectNotFound, "Check the path; paths inside a container are absolute and resolved in its root."),
        new("LayerDigestInvalid", ErrorCategory.InvalidData, "A shared image layer is named by a sha256 digest; the image's config gives something else. Do not trust the image; copy it again."),
        new("LayerDigestMismatch", ErrorCategory.InvalidData, "An image layer did not hash to the diff_id its config gives; nothing was kept. Copy the image again from a trusted source."),
        new("LinkBusy", ErrorCategory.ResourceBusy, "Bring the link down first (-Down), then rename it."),
        new("LinkExists", ErrorCategory.ResourceExists, "Choose another link name, or remove the existing link (Remove-NetworkLink).", ErrorCategory.InvalidArgument),
        new("LinkKindNotSupported", ErrorCategory.NotInstalled, "Load the kernel module for that link type (the message names it)."),
        new("LinkNotFound", ErrorCategory.ObjectNotFound, "Get-NetworkLink lists the links; check the name and the namespace."),
        new("ManifestApplyFailed", ErrorCategory.DeviceError, "Read the message for the resource that failed; fix the cause and apply the manifest again (what converged is kept)."),
        new("ManifestBridgeConflict", ErrorCategory.ResourceExists, "An interface of the bridge's name exists and is not a bridge: remove or rename it, or rename the bridge in the manifest."),
        new("ManifestContainerNotOwned", ErrorCategory.InvalidOperation, "A container of that name exists that this manifest did not make: run with -Adopt to take it over, or rename the container in the manifest."),
        new("ManifestDependencyCycle", ErrorCategory.InvalidData, "Remove one of the dependsOn entries (or the NIC that implies one) of the cycle the message names."),
        new("ManifestNotFound", ErrorCategory.ObjectNotFound, "Give -Path an existing manifest file, or a folder holding *.yaml or *.yml files."),
        new("ManifestReadFailed", ErrorCategory.DeviceError, "Check that the manifest file can be read by the caller."),
        new("ManifestReadinessFailed", ErrorCategory.OperationTimeout, "The container started but its readiness probe never succeeded: check it (Get-ContainerConsoleLog, Invoke-ContainerCommand), or give the probe a longer timeout; its dependents were skipped."),
        new("MigrationFailed", ErrorCategory.InvalidOperation, "The move did not complete and was rolled back; the message says which step failed."),
        new("MigrationVerifyFailed", ErrorCategory.InvalidOperation, "The container is at the destination but not in the expected state; check it there with Get-Container."),
        new("ModuleManifestNotFound", ErrorCategory.ObjectNotFound, "Import PSContainers from its module folder (the one with PSContainers.psd1) and run the command again."),
        new("MountSourceNotFound", ErrorCategory.ObjectNotFound, "Create the bind mount's source on the host, or remove the mount from config.yaml."),
        new("NetNamespaceBusy", ErrorCategory.ResourceBusy, "Processes still use the network namespace; stop them, then remove it."),
        new("NetNamespaceExecFailed", ErrorCategory.InvalidOperation, "The command could not enter the network namespace; read the helper's message."),
        new("NetNamespaceExists", ErrorCategory.ResourceExists, "Choose another name, or remove the existing namespace (Remove-NetNamespace)."),
        new("NetNamespaceFailed", ErrorCategory.DeviceError, "The network namespace could not be created; run as root and read the system error in the message.", ErrorCategory.InvalidArgument),
        new("NetNamespaceNotFound", ErrorCategory.ObjectNotFound, "Create it with New-NetNamespace, or list them with Get-NetNamespace."),
        new("NetlinkError", ErrorCategory.InvalidOperation, "The kernel refused the network change; read its message and fix the request."),
        new("NetlinkFailed", ErrorCategory.DeviceError, "The netlink socket failed; check that the network stack is available and retry."),
        new("NetworkNeedsRoot", ErrorCategory.PermissionDenied, "As non-root, use pasta networking or a veth on a bridge root granted you in /etc/pscontainers/usernet."),
        new("NetworkPermissionDenied", ErrorCategory.PermissionDenied, "Run as root (or with CAP_NET_ADMIN in the namespace) to change its network."),
        new("NewIdMapNotFound", ErrorCategory.NotInstalled, "Install newuidmap and newgidmap: apt-get install uidmap."),
        new("NftFailed", ErrorCategory.InvalidOperation, "Check that the kernel has nf_tables and no other ruleset conflicts, or set \"nat\": false in network.json."),
        new("NftNotInstalled", ErrorCategory.NotInstalled, "Install nft (apt-get install nftables), or set \"nat\": false in network.json."),
        new("NoCgroupFilesystem", ErrorCategory.NotInstalled, "Mount a cgroup filesystem, e.g. mount -t cgroup2 none /sys/fs/cgroup."),
        new("NoCommand", ErrorCategory.InvalidArgument, "Give the program to run with -Command, e.g. -Command hostname."),
        new("NoFreeSubordinateIdRange", ErrorCategory.InvalidOperation, "Give -Start outside the allocation window, a smaller -Count, or raise SUB_UID_MAX/SUB_GID_MAX in /etc/login.defs."),
        new("NoLimitGiven", ErrorCategory.InvalidArgument, "Give at least one limit, e.g. -MemoryMax 512MB."),
        new("NoSnapshot", ErrorCategory.ObjectNotFound, "Make a snapshot first (New-ContainerSnapshot), or name one with -Snapshot."),
        new("NoSubordinateIds", ErrorCategory.PermissionDenied, "Ask root to grant you ids (Add-SubordinateIdRange -User you), or set an idMap in ~/.config/pscontainers/config.yaml; root can also make a privileged container with -Privileged."),
        new("NotABridgePort", ErrorCategory.InvalidOperation, "Attach the link to a bridge first (-Master), then set hairpin."),
        new("NotAContainerArchive", ErrorCategory.InvalidData, "Give an archive made by Export-Container or an LXC container archive (it needs a rootfs/ directory)."),
        new("NotAnAutostartUnit", ErrorCategory.ResourceExists, "The file at that path is not a unit PSContainers wrote; give another -Path, or remove the file yourself if it is no longer wanted."),
        new("OciDigestMismatch", ErrorCategory.InvalidData, "A blob of the image does not hash to the digest (or size) its descriptor gives: the image is damaged or was tampered with. Copy it again from a trusted source (skopeo copy)."),
        new("OciImageAmbiguous", ErrorCategory.InvalidArgument, "The layout or archive holds several images: say which with -ImageTag (its ref name or repo tag)."),
        new("OciImageInvalid", ErrorCategory.InvalidData, "Give -ImagePath an OCI image layout directory (oci-layout, index.json, blobs/), a plain tar of one, or a docker save archive; copy the image again if it is damaged."),
        new("OciImageNoCommand", ErrorCategory.InvalidArgument, "The image has neither Entrypoint nor Cmd: give the program to run with -Command."),
        new("OciImageNotFound", ErrorCategory.ObjectNotFound, "Give -ImagePath an existing OCI image layout directory or archive."),
        new("OciImagePathRequired", ErrorCategory.InvalidArgument, "Give -ImagePath with -Template oci: an OCI image layout directory, or an OCI / docker save archive."),
        new("OciImageTagNotFound", ErrorCategory.ObjectNotFound, "Give -ImageTag one of the ref names or repo tags the error lists."),
        new("OciLayerUnsafe", ErrorCategory.InvalidData, "A layer of the image would escape the rootfs (.., an absolute name, a whiteout or link pointing out, a device node as non-root). Do not trust the image; build it again from a trusted source."),
        new("OciMediaTypeUnsupported", ErrorCategory.InvalidData, "Only OCI / docker v2 manifests with plain, gzip or zstd tar layers are read offline; copy the image to an oci: layout with skopeo first."),
        new("OciUserNotFound", ErrorCategory.InvalidData, "The image's User is not in its own /etc/passwd or /etc/group; give init.user and init.group (numeric) in a -ConfigPath file, or fix the image."),
        new("OverlayLowerMissing", ErrorCategory.ObjectNotFound, "The overlay container's lower layer is gone; restore it, or recreate the container.", ErrorCategory.InvalidData),
        new("OverlayTooManyLayers", ErrorCategory.InvalidArgument, "The image has more layers than one overlay mount takes; use -Backend dir or btrfs, which apply them into one tree."),
        new("ParentLinkNotFound", ErrorCategory.ObjectNotFound, "Create the parent link first, or check its name (Get-NetworkLink)."),
        new("PastaFailed", ErrorCategory.InvalidOperation, "pasta could not set up the network; read its message, check the container's pasta options and /dev/net/tun.", ErrorCategory.OperationTimeout),
        new("PastaNotFound", ErrorCategory.NotInstalled, "Install pasta: apt-get install passt."),
        new("PathInvalid", ErrorCategory.InvalidArgument, "Give a path that ends in a file or directory name."),
        new("PathNotAbsolute", ErrorCategory.InvalidArgument, "Paths inside a container are absolute: start them with /."),
        new("PreDumpUnsupported", ErrorCategory.NotImplemented, "This kernel lacks soft-dirty memory tracking; checkpoint without -Warm/pre-dump."),
        new("PrivilegedNeedsRoot", ErrorCategory.PermissionDenied, "Leave out -Privileged and privileged: true: a non-root user's containers are user-namespaced on its subordinate ids."),
        new("ProcessNotFound", ErrorCategory.ObjectNotFound, "Check the process id; the process may have exited."),
        new("ProgramNotFound", ErrorCategory.NotInstalled, "Install the program the message names, or put it on PATH."),
        new("ProgramTimedOut", ErrorCategory.OperationTimeout, "The external program hung and was killed; check what it waits for (network, lock, prompt) and try again."),
        new("PwshNotFound", ErrorCategory.NotInstalled, "Install PowerShell 7 (pwsh) in PATH, or run the command from pwsh."),
        new("RemoteCommandFailed", ErrorCategory.DeviceError, "A command on the destination failed; read its error, fix the destination and retry."),
        new("RemoteError", ErrorCategory.InvalidOperation, "The destination reported an error without an id; read its message."),
        new("RemotePowerShellFailed", ErrorCategory.InvalidOperation, "Install pwsh and PSContainers on the destination (or fix -RemotePowerShell/-RemoteModule).", ErrorCategory.NotInstalled),
        new("RemoteProtocolError", ErrorCategory.InvalidData, "Install the same PSContainers version on the destination."),
        new("RestoreFailed", ErrorCategory.InvalidOperation, "CRIU could not restore; its log (named in the message) says why."),
        new("RootRequired", ErrorCategory.PermissionDenied, "Run PowerShell as root (sudo pwsh), or use an unprivileged container of your own."),
        new("RootfsChmodFailed", ErrorCategory.DeviceError, "A mode could not be set in the rootfs; check the filesystem and free space.", ErrorCategory.PermissionDenied, ErrorCategory.InvalidOperation),
        new("RootfsNotFound", ErrorCategory.ObjectNotFound, "The container's root filesystem is missing; restore it, or remove and recreate the container."),
        new("RootfsPathIsDirectory", ErrorCategory.InvalidData, "Remove the directory from the rootfs where a file belongs."),
        new("RootfsPathNotDirectory", ErrorCategory.InvalidData, "Remove the file or symlink from the rootfs where a directory belongs."),
        new("RootfsRemoveFailed", ErrorCategory.InvalidOperation, "Files owned by the container's ids could not be removed; read the message, and remove them as root if needed."),
        new("RootfsShiftFailed", ErrorCategory.InvalidOperation, "The rootfs could not be given to the container's ids; check your subordinate ids and free space."),
        new("IsolatedCopyShifted", ErrorCategory.InvalidOperation, "An isolated container whose rootfs is shifted into its own id block cannot be copied as it is; export it and import the archive under the new name."),
        new("NoIsolatedIdRange", ErrorCategory.LimitsExceeded, "No free block of subordinate ids is left for an isolated container; give the user a larger range, or remove an isolated container."),
        new("IdRangeRecordCorrupt", ErrorCategory.InvalidData, "The store's record of isolated id blocks holds a line that cannot be read; fix or remove it."),
        new("IdmapProbeFailed", ErrorCategory.InvalidOperation, "Whether the store's filesystem can be idmapped could not be found out; check that psc-helper is intact and the store path exists."),
        new("IdmapMountFailed", ErrorCategory.InvalidOperation, "The container's rootfs could not be mounted idmapped for the restore; read the reason, and check the kernel supports idmapped mounts on the store's filesystem."),
        new("RootfsWriteFailed", ErrorCategory.DeviceError, "A file could not be written in the rootfs; check the filesystem and free space.", ErrorCategory.PermissionDenied, ErrorCategory.InvalidOperation),
        new("RouteExists", ErrorCategory.ResourceExists, "Remove the existing route first (Remove-NetworkRoute)."),
        new("RouteNotFound", ErrorCategory.ObjectNotFound, "Get-NetworkRoute lists the routes; check the destination."),
        new("SameStore", ErrorCategory.InvalidArgument, "Give another store as -Destination (Copy-Container copies within a store)."),
        new("SeccompProfileNotFound", ErrorCategory.ObjectNotFound, "Create the seccomp profile, or use 'default' or 'unconfined'."),
        new("SeccompProfileTooLarge", ErrorCategory.InvalidArgument, "Make the seccomp profile smaller (fewer rules or argument filters)."),
        new("SeccompUnsupportedArch", ErrorCategory.NotImplemented, "Set security.seccomp.profile to unconfined on this architecture."),
        new("SignalFailed", ErrorCategory.PermissionDenied, "The process could not be signalled; run as its owner or root."),
        new("SnapshotNotFound", ErrorCategory.ObjectNotFound, "Get-ContainerSnapshot lists the container's snapshots."),
        new("SnapshotUnsupported", ErrorCategory.InvalidOperation, "Snapshots need a store-owned rootfs; copy the container into the store first."),
        new("SshConnectFailed", ErrorCategory.DeviceError, "Give the destination key access for this user (ssh-copy-id, -IdentityFile) and a known host key."),
        new("SshFailed", ErrorCategory.DeviceError, "ssh failed; read its message (network, authentication, host key)."),
        new("SshNotInstalled", ErrorCategory.NotInstalled, "Install the OpenSSH client: apt-get install openssh-client."),
        new("StartFailed", ErrorCategory.InvalidOperation, "Check the init command exists in the rootfs and read the console log; free space in the store if it is full.", ErrorCategory.DeviceError),
        new("StopTimeout", ErrorCategory.OperationTimeout, "A process is stuck in the kernel (D state); wait and try Stop-Container -Kill again."),
        new("StorageOperationFailed", ErrorCategory.InvalidOperation, "A file operation in the store failed; the message names it and the system error (permissions, free space).", ErrorCategory.PermissionDenied, ErrorCategory.DeviceError),
        new("SubnetExhausted", ErrorCategory.ResourceBusy, "Remove containers, or widen the default bridge's subnet in network.json."),
        new("SubordinateIdFileLockFailed", ErrorCategory.InvalidOperation, "The subordinate-id files could not be locked; run as root.", ErrorCategory.PermissionDenied),
        new("SubordinateIdFileLocked", ErrorCategory.ResourceBusy, "Another program (useradd, usermod) changes the files; try again when it has finished."),
        new("SubordinateIdIOError", ErrorCategory.WriteError, "/etc/subuid or /etc/subgid could not be read or written; check the files and run as root to change them."),
        new("SubordinateIdRangeNotFound", ErrorCategory.ObjectNotFound, "Get-SubordinateIdRange -User lists the user's ranges."),
        new("SubordinateIdRangeOverlap", ErrorCategory.ResourceExists, "Give a range that overlaps no existing line, or let the module choose one (no -Start)."),
        new("SubordinateIdWriteFailed", ErrorCategory.InvalidOperation, "The subordinate-id files could not be written; run as root and check the disk.", ErrorCategory.PermissionDenied),
        new("SwapNeedsMemoryMax", ErrorCategory.InvalidArgument, "On cgroup v1 set MemoryMax together with MemorySwapMax."),
        new("SystemctlFailed", ErrorCategory.InvalidOperation, "See 'systemctl status pscontainers-autostart.service' and 'journalctl -xe' for why systemd refused."),
        new("SystemdNotRunning", ErrorCategory.NotInstalled, "systemd is not this machine's init: start the containers with Start-ContainerAutostart from its boot scripts, or use -Force to write the unit for a later systemd boot."),
        new("TcpEstablishedNeedsWarm", ErrorCategory.InvalidArgument, "Add -Warm to keep TCP connections across the move."),
        new("TransferFailed", ErrorCategory.DeviceError, "A file could not be written on the destination; check its free space and permissions."),
        new("TreeCopyFailed", ErrorCategory.InvalidOperation, "Copying the tree failed; the message names the file and the system error (permissions, free space).", ErrorCategory.PermissionDenied, ErrorCategory.DeviceError),
        new("TunUnavailable", ErrorCategory.PermissionDenied, "Root can open /dev/net/tun to users: chmod 0666 /dev/net/tun (as udev does by default)."),
        new("UnknownArchiveType", ErrorCategory.InvalidArgument, "Name the archive .tar, .tar.gz (.tgz) or .tar.zst."),
        new("UnknownBackend", ErrorCategory.InvalidArgument, "Use one of the storage backends the message lists."),
        new("UnknownTemplate", ErrorCategory.InvalidArgument, "Use a known template: busybox or debootstrap."),
        new("UnsupportedArchitecture", ErrorCategory.NotImplemented, "debootstrap knows no Debian architecture for this machine; use the busybox template here."),
        new("UserNicFailed", ErrorCategory.DeviceError, "psc-usernic failed; read its message (quota, bridge, permissions).", ErrorCategory.OperationTimeout),
        new("UserNicInstallFailed", ErrorCategory.DeviceError, "Installing psc-usernic failed; read the system error and check the destination directory."),
        new("UserNicInstallNeedsRoot", ErrorCategory.PermissionDenied, "Run Install-ContainerUserNic as root."),
        new("UserNicNotFound", ErrorCategory.NotInstalled, "Rebuild the module so psc-usernic exists, or give its path."),
        new("UserNicNotInstalled", ErrorCategory.NotInstalled, "As root run Install-ContainerUserNic (or set $env:PSC_USERNIC to an installed copy)."),
        new("UserNicNotPermitted", ErrorCategory.PermissionDenied, "Ask root to grant you that bridge in /etc/pscontainers/usernet."),
        new("UserNicUnsafeDirectory", ErrorCategory.PermissionDenied, "Install psc-usernic in a directory root owns and only root can write."),
        new("UserNotFound", ErrorCategory.ObjectNotFound, "Create the user first (useradd) or check the spelling."),
        new("UsernetQuotaExceeded", ErrorCategory.PermissionDenied, "Remove some of your containers' interfaces, or ask root to raise your count in /etc/pscontainers/usernet."),
        new("WaitTimeout", ErrorCategory.OperationTimeout, "The container did not reach the state in time; raise -Timeout or check why (Get-ContainerConsoleLog)."),
    };

    private static readonly Dictionary<string, ErrorCatalogEntry> ById = Entries.ToDictionary(e => e.Id, StringComparer.Ordinal);

    public static ErrorCatalogEntry? Find(string id) => ById.GetValueOrDefault(id);

    public const string AboutSectionTitle = "ERROR IDS";

    /// <summary>The ERROR IDS section of about_PSContainers.help.txt, title line included, lines of at most 80 characters.</summary>
    public static string AboutSection()
    {
        var text = new StringBuilder();
        text.Append(AboutSectionTitle).Append('\n');
        Wrap(text, "    ", "Every error PSContainers reports has one of these ids: $_.FullyQualifiedErrorId " +
            "starts with it, $_.CategoryInfo.Category is its category (in parentheses; a cause such as " +
            "EPERM may give another, listed after it) and $_.ErrorDetails.RecommendedAction says what to " +
            "do, as below. This list is generated from the module's error catalog.");
        foreach (var e in Entries.OrderBy(e => e.Id, StringComparer.Ordinal))
        {
            text.Append('\n');
            var categories = string.Join(", ", new[] { e.Category }.Concat(e.OtherCategories));
            text.Append("    ").Append(e.Id).Append(" (").Append(categories).Append(")\n");
            Wrap(text, "        ", e.Action);
        }
        return text.ToString();
    }

    private static void Wrap(StringBuilder text, string indent, string words)
    {
        var line = new StringBuilder(indent);
        foreach (var word in words.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.Length > indent.Length && line.Length + 1 + word.Length > 80)
            {
                text.Append(line).Append('\n');
                line.Clear().Append(indent);
            }
            if (line.Length > indent.Length) line.Append(' ');
            line.Append(word);
        }
        text.Append(line).Append('\n');
    }
}
