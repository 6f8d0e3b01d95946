# fish completion for sysext (libsysext); confext.fish loads the same definitions.

function __libsysext_complete --argument-names cmd
    set -l verbs status list merge unmerge refresh add remove plan help
    set -l nv "not __fish_seen_subcommand_from $verbs"
    complete -c $cmd -f
    complete -c $cmd -n $nv -a status -d 'Show current merge status'
    complete -c $cmd -n $nv -a list -d 'List installed extensions'
    complete -c $cmd -n $nv -a merge -d 'Merge extensions into relevant hierarchies'
    complete -c $cmd -n $nv -a unmerge -d 'Unmerge extensions from relevant hierarchies'
    complete -c $cmd -n $nv -a refresh -d 'Unmerge and merge extensions again'
    complete -c $cmd -n $nv -a add -d 'Merge these extensions too, keeping the merged ones'
    complete -c $cmd -n $nv -a remove -d 'Unmerge only these extensions, keeping the others'
    complete -c $cmd -n $nv -a plan -d 'Show what a merge would do, mounting nothing'
    complete -c $cmd -n $nv -a help -d 'Show the help'
    complete -c $cmd -n "__fish_seen_subcommand_from add remove" \
        -a "($cmd --no-legend list 2>/dev/null | string replace -r ' .*' '')" -d 'extension image'
    complete -c $cmd -s h -l help -d 'Show the help'
    complete -c $cmd -l version -d 'Show the package version'
    complete -c $cmd -l mutable -x -a 'no yes auto import ephemeral ephemeral-import help' -d 'Make extension overlays mutable'
    complete -c $cmd -l no-pager -d 'Do not pipe output into a pager'
    complete -c $cmd -l no-legend -d 'Do not show the headers and footers'
    complete -c $cmd -l long -d 'Also show the mutable mode and what a merge does with each image'
    complete -c $cmd -l root -x -a '(__fish_complete_directories)' -d 'Operate relative to root path'
    complete -c $cmd -l json -x -a 'short pretty off help' -d 'Generate JSON output'
    complete -c $cmd -l force -d 'Ignore version incompatibilities'
    complete -c $cmd -l no-reload -d 'Do not reload the service manager'
    complete -c $cmd -l image-policy -x -d 'Disk image dissection policy'
    complete -c $cmd -l noexec -x -a 'yes no' -d 'Mount the overlays with noexec'
    complete -c $cmd -l always-refresh -d 'Rebuild on refresh even if nothing changed (=yes|no)'
    complete -c $cmd -l allow-block-devices -d 'Use block devices in the search directories of --root'
    complete -c $cmd -l compat -x -a '257 262' -d 'Follow this systemd release'
    complete -c $cmd -l confext -d 'Operate on confexts'
    complete -c $cmd -l sysext -d 'Operate on sysexts'
    complete -c $cmd -s v -l verbose -d 'Also print why images were skipped'
end

__libsysext_complete sysext
