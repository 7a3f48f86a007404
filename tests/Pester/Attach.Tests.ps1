#Requires -Version 7.4
<#
.SYNOPSIS
    Enter-Container and Invoke-ContainerCommand at the container/host boundary (issue 11, item 2),
    in real pwsh in a real terminal: a tmux pane runs pwsh with the module, and the story types
    into it and reads the screen back.

.NOTES
    Needs Linux, root, tmux, gcc and the built module in out/PSContainers. Works in a private store
    under /tmp/psc-test-<guid> and a tmux session named after it, both removed in AfterAll also when
    tests fail. What it shows: the attached shell has a pty of the container's own devpts (`tty`
    names it), its window size (and the console's, with -Console) follows the caller's terminal,
    job control works, TIOCSTI from inside reaches only that pty (never the caller's shell), kill(0)
    of a non-interactive command reaches only its own process group, and the caller's terminal is
    usable after every way out: exit, a killed container, a killed relay, a killed caller.
#>

BeforeDiscovery {
    $canRun = $IsLinux -and ((& id -u) -eq '0') -and (Get-Command tmux -ErrorAction SilentlyContinue) -and (Get-Command gcc -ErrorAction SilentlyContinue)
}

Describe 'Attach in a real terminal' -Tag 'E2E', 'Root' -Skip:(-not $canRun) {
    BeforeAll {
        $script:module = Join-Path $PSScriptRoot '../../out/PSContainers'
        Import-Module $script:module -Force
        $script:id = [guid]::NewGuid().ToString('N').Substring(0, 12)
        $script:root = Join-Path ([IO.Path]::GetTempPath()) "psc-test-$($script:id)"
        $script:store = Join-Path $script:root 'store'
        New-Item -ItemType Directory -Path $script:store | Out-Null
        # A copy in this scope: the caller's session keeps its own $PSDefaultParameterValues.
        $PSDefaultParameterValues = $PSDefaultParameterValues.Clone()
        $PSDefaultParameterValues['*-Container*:StorePath'] = $script:store
        $script:probe = Join-Path $script:root 'escape-probe'
        & gcc -static -O1 -o $script:probe (Join-Path $PSScriptRoot '../PSContainers.Tests/Probes/escape-probe.c')
        $start = 1500000000 + (Get-Random -Maximum 4000) * 65536
        $idmap = Join-Path $script:root 'idmap.yaml'
        Set-Content -Path $idmap -Value "idMap: [u 0 $start 65536, g 0 $start 65536]"
        $script:priv = "psct-tty-$($script:id.Substring(0, 6))"
        $script:uns = "psct-ttyu-$($script:id.Substring(0, 6))"
        foreach ($n in $script:priv, $script:uns) {
            $c = if ($n -eq $script:uns) { New-Container $n -ConfigPath $idmap } else { New-Container $n }
            Copy-Item $script:probe (Join-Path $c.RootfsPath 'bin/escape-probe')
            Start-Container $n
        }
        $script:tmux = "psct-tmux-$($script:id)"
        $script:init = Join-Path $script:root 'init.ps1'
        Set-Content -Path $script:init -Value @"
Import-Module '$script:module'
`$PSDefaultParameterValues['*-Container*:StorePath'] = '$script:store'
"@
        function script:Screen { (& tmux capture-pane -p -J -S -200 -t $script:tmux) -join "`n" }
        function script:TypeLine([string]$text) { & tmux send-keys -t $script:tmux -l $text; & tmux send-keys -t $script:tmux Enter }
        # Waits until the screen matches; returns the match (its groups), or fails with the screen.
        function script:WaitFor([string]$pattern, [int]$seconds = 20) {
            $deadline = [DateTime]::UtcNow.AddSeconds($seconds)
            do {
                $m = [regex]::Match((Screen), $pattern)
                if ($m.Success) { return $m }
                Start-Sleep -Milliseconds 100
            } while ([DateTime]::UtcNow -lt $deadline)
            throw "timed out waiting for /$pattern/ on the screen:`n$(Screen)"
        }
        # A fresh pane: pwsh (or bash) at its prompt, 120x40.
        function script:NewPane([string]$shell = 'pwsh') {
            & tmux kill-session -t $script:tmux 2>$null
            $cmd = if ($shell -eq 'pwsh') { "pwsh -NoProfile -NoLogo -NoExit -File $script:init" } else { 'bash --norc --noprofile' }
            & tmux new-session -d -s $script:tmux -x 120 -y 40 $cmd
            & tmux set-option -t $script:tmux remain-on-exit on | Out-Null
            if ($shell -eq 'pwsh') { WaitFor 'PS [^\n]*>' 60 | Out-Null; AssertPromptWorks 'ready' }
            else { TypeLine 'echo ready-$((40+2))'; WaitFor 'ready-42' | Out-Null }
        }
        # The processes below the pane (tmux may start the command through sh): pid, parent, argv.
        function script:Descendants {
            $all = Get-ChildItem /proc -Directory | Where-Object Name -match '^\d+$' | ForEach-Object {
                try {
                    $stat = Get-Content "/proc/$($_.Name)/stat" -Raw -ErrorAction Stop
                    $argv = (Get-Content "/proc/$($_.Name)/cmdline" -Raw -ErrorAction Stop) -split "`0"
                } catch { return }
                [pscustomobject]@{ Pid = [int]$_.Name; Parent = [int]$stat.Substring($stat.LastIndexOf(')') + 2).Split(' ')[1]; Argv = $argv }
            }
            $found = @([int](& tmux display-message -p -t $script:tmux '#{pane_pid}'))
            do {
                $more = @($all | Where-Object { $found -contains $_.Parent -and $found -notcontains $_.Pid })
                $more | ForEach-Object { $_ }
                $found += $more.Pid
            } while ($more.Count)
        }
        # The relay: the helper pwsh started (argv "... exec SPEC"), not its stager below it.
        function script:RelayPid {
            $d = @(Descendants)
            $helpers = $d | Where-Object { $_.Argv.Count -ge 2 -and $_.Argv[1] -eq 'exec' }
            @($helpers | Where-Object { $helpers.Pid -notcontains $_.Parent }).Pid
        }
        # pwsh in the pane still reads and runs commands, and its output is right.
        # (Typed again if the first keys came while pwsh was still starting or a relay was ending.)
        function script:AssertPromptWorks([string]$tag) {
            for ($try = 1; ; $try++) {
                TypeLine "`"alive-$tag-`$(6*7)`""
                try { WaitFor "alive-$tag-42" 8 | Out-Null; return } catch { if ($try -ge 4) { throw } }
            }
        }
    }

    AfterAll {
        & tmux kill-session -t $script:tmux 2>$null
        Get-Container -StorePath $script:store -ErrorAction SilentlyContinue | Remove-Container -Force -ErrorAction SilentlyContinue
        Remove-Item -Recurse -Force $script:root -ErrorAction SilentlyContinue
    }

    It 'gives the attached shell a pty of the container, its window size, job control, and the prompt back' {
        NewPane
        TypeLine "Enter-Container $script:priv"
        WaitFor "@$([regex]::Escape($script:priv))" | Out-Null
        TypeLine 'echo "T=$(tty)=T"; echo "S1=$(stty size)=S1"'
        $tty = (WaitFor 'T=(/dev/[^=\s]*|not a tty)=T').Groups[1].Value
        $tty | Should -Match '^/dev/pts/\d+$'
        (WaitFor 'S1=(\d+ \d+)=S1').Groups[1].Value | Should -Be '40 120'
        # The pty is the container's: its devpts instance is the one mounted in the container.
        TypeLine 'echo "D=$(stat -c %t:%T $(tty)):$(grep -c " /dev/pts devpts" /proc/self/mounts)=D"'
        (WaitFor 'D=(\w+:\w+:\d+)=D').Groups[1].Value | Should -Match '^88:\w+:1$'   # major 136 (0x88), one devpts
        & tmux resize-window -t $script:tmux -x 100 -y 30
        Start-Sleep -Milliseconds 300
        TypeLine 'echo "S2=$(stty size)=S2"'
        (WaitFor 'S2=(\d+ \d+)=S2').Groups[1].Value | Should -Be '30 100'
        # Job control: its own session with the pty as controlling terminal.
        TypeLine 'sleep 300'
        Start-Sleep -Milliseconds 300
        & tmux send-keys -t $script:tmux C-z
        WaitFor '(?i)stopped' | Out-Null
        TypeLine 'jobs > /tmp/jobs; echo "J=$(grep -c sleep /tmp/jobs)=J"; kill -9 %1; echo "C=$$:$(cut -d" " -f6 /proc/$$/stat)=C"'
        (WaitFor 'J=(\d+)=J').Groups[1].Value | Should -Be '1'
        $c = (WaitFor 'C=(\d+):(\d+)=C')
        $c.Groups[1].Value | Should -Be $c.Groups[2].Value   # the shell leads its session
        TypeLine 'sleep 300'
        Start-Sleep -Milliseconds 300
        & tmux send-keys -t $script:tmux C-c
        TypeLine 'echo "after-ctrl-c-$((1+1))"'
        WaitFor 'after-ctrl-c-2' | Out-Null
        TypeLine 'exit'
        AssertPromptWorks 'exit'
    }

    It 'keeps TIOCSTI inside the container: typed input never reaches the caller''s shell' -TestCases @(
        @{ Kind = 'privileged' }, @{ Kind = 'user-namespaced' }
    ) {
        param($Kind)
        $name = if ($Kind -eq 'privileged') { $script:priv } else { $script:uns }
        $marker = Join-Path $script:root "tiocsti-$Kind"
        NewPane
        TypeLine "Enter-Container $name"
        WaitFor "@$([regex]::Escape($name))" | Out-Null
        # TIOCSTI works, on the container's own pty: the injected line runs in the container's shell.
        TypeLine "escape-probe tiocsti 0 'echo sti-`$((3*3))~'"
        WaitFor 'sti-9' | Out-Null
        # The attack: a background process waits until the shell has exited (the caller's shell reads
        # the terminal again) and then pushes a pwsh command. Under the old design pwsh ran it on the host.
        TypeLine "escape-probe tiocsti 0 '||New-Item -ItemType File $marker~' &"
        TypeLine 'exit'
        Start-Sleep -Seconds 3
        Start-Sleep -Seconds 1
        AssertPromptWorks "sti-$Kind"
        Test-Path $marker | Should -BeFalse
        (Screen) | Should -Not -Match 'New-Item.*\n.*Directory:'
    }

    It 'finds that a real terminal answers a cursor position query, so progress is drawn there' {
        # The other side of tests/Pester/Story.Tests.ps1 (a terminal that never answers: no progress).
        NewPane
        TypeLine "`"Q=`$([PSContainers.Runtime.Native.Terminal]::AnswersCursorQuery([timespan]::FromMilliseconds(500)))=Q`""
        (WaitFor 'Q=(\w+)=Q').Groups[1].Value | Should -Be 'True'
        AssertPromptWorks 'cpr'
    }

    It 'runs a non-interactive command in its own process group: kill(0) leaves the caller alive' {
        NewPane
        TypeLine "`"K=`$((Invoke-ContainerCommand $script:priv -Command sh,-c,'kill -TERM 0; sleep 3; echo survived').ExitCode)=K`""
        (WaitFor 'K=(\d+)=K').Groups[1].Value | Should -Be '143'
        AssertPromptWorks 'kill0'
        TypeLine "`"T=`$((Invoke-ContainerCommand $script:priv -Command escape-probe,tiocsti,0,x).Output)=T`""
        (WaitFor 'T=((?:ok|err) \d+)=T').Groups[1].Value | Should -Be 'err 25'   # ENOTTY: stdin is a pipe, no terminal
    }

    It 'restores the terminal when the container is killed and when the relay is killed' {
        NewPane
        TypeLine "Enter-Container $script:priv"
        WaitFor "@$([regex]::Escape($script:priv))" | Out-Null
        Stop-Container $script:priv -Kill
        AssertPromptWorks 'stopped'
        Start-Container $script:priv
        TypeLine "Enter-Container $script:priv"
        WaitFor "(?s)alive-stopped-42.*@$([regex]::Escape($script:priv))" | Out-Null
        $relay = RelayPid
        $relay | Should -HaveCount 1
        & kill -TERM $relay
        AssertPromptWorks 'relayterm'
    }

    It 'attaches to the console of a container whose init is a shell: type, see, detach with Ctrl+a q, the prompt works' {
        $con = "psct-con-$($script:id.Substring(0, 6))"
        $c = New-Container $con -Command /bin/sh
        Copy-Item $script:probe (Join-Path $c.RootfsPath 'bin/escape-probe')
        Start-Container $con | Out-Null
        NewPane
        TypeLine "Enter-Container $con -Console"
        WaitFor 'Connected to the console' | Out-Null
        TypeLine 'echo "C=$((6*7)):$(tty)=C"'
        (WaitFor 'C=42:([^=\s]+)=C').Groups[1].Value | Should -Be '/dev/console'
        # The console has this terminal's size, and follows it when the window is resized.
        TypeLine 'echo "W1=$(stty size)=W1"'
        (WaitFor 'W1=(\d+ \d+)=W1').Groups[1].Value | Should -Be '40 120'
        & tmux resize-window -t $script:tmux -x 90 -y 33
        Start-Sleep -Milliseconds 300
        TypeLine 'echo "W2=$(stty size)=W2"'
        (WaitFor 'W2=(\d+ \d+)=W2').Groups[1].Value | Should -Be '33 90'
        # One attached session at a time: a second is refused, and touches nothing.
        { Enter-Container $con -Console -ErrorAction Stop } | Should -Throw -ErrorId 'ConsoleBusy*'
        # The log kept recording while attached.
        (Get-ContainerConsoleLog $con) -join "`n" | Should -Match 'C=42:/dev/console=C'
        # TIOCSTI from inside reaches the console's own pty only: the injected line runs in the
        # container's shell; a late one (after the detach, when pwsh reads the terminal again) goes
        # nowhere near the caller's shell.
        $marker = Join-Path $script:root 'console-sti'
        TypeLine "escape-probe tiocsti 0 'echo sti-`$((3*3))~'"
        WaitFor 'sti-9' | Out-Null
        # (On the console itself, held as fd 3: a shell without job control gives a background job
        # /dev/null as stdin, and a user-namespaced container's root may not open the host-owned pty by name.)
        TypeLine "exec 3<&0; escape-probe tiocsti 3 '||New-Item -ItemType File $marker~' &"
        & tmux send-keys -t $script:tmux C-a q
        AssertPromptWorks 'console'
        Start-Sleep -Seconds 3
        AssertPromptWorks 'console-late'
        Test-Path $marker | Should -BeFalse
        # It was pushed, into the container's console: its shell got the line (and could not run it).
        (Get-ContainerConsoleLog $con) -join "`n" | Should -Match 'New-Item -ItemType File' 
        # The container runs on, and its console can be attached again; Ctrl+a a sends Ctrl+a.
        (Get-Container $con).State | Should -Be 'Running'
        TypeLine "Enter-Container $con -Console -EscapeKey b"
        WaitFor '(?s)alive-console-late-42.*Type Ctrl\+b q to detach' | Out-Null
        TypeLine 'echo "again-$((5*5))"'
        WaitFor 'again-25' | Out-Null
        & tmux send-keys -t $script:tmux C-b q
        AssertPromptWorks 'console-b'
    }

    It 'restores the terminal after a console detach, and when the caller of a console attach is killed' {
        $con = "psct-con-$($script:id.Substring(0, 6))"
        NewPane 'bash'
        TypeLine "pwsh -NoProfile -NoLogo -c '. $script:init; Enter-Container $con -Console'; echo `"M=`$(stty -a | grep -o -- '-\?icanon\|-\?echo ' | tr -d ' ' | tr '\n' ,)=M`""
        WaitFor 'Connected to the console' | Out-Null
        & tmux send-keys -t $script:tmux C-a q
        (WaitFor 'M=((?:-?icanon|-?echo|,)+)=M').Groups[1].Value | Should -Be 'icanon,echo,'
        TypeLine 'clear'
        TypeLine "pwsh -NoProfile -NoLogo -c '. $script:init; Enter-Container $con -Console'; sleep 2; echo `"K=`$(stty -a | grep -o -- '-\?icanon\|-\?echo ' | tr -d ' ' | tr '\n' ,)=K`""
        WaitFor 'Connected to the console' | Out-Null
        $pwsh = @(Descendants | Where-Object { $_.Argv[0] -match 'pwsh$' }).Pid
        $pwsh | Should -HaveCount 1
        & kill -KILL $pwsh
        (WaitFor 'K=((?:-?icanon|-?echo|,)+)=K').Groups[1].Value | Should -Be 'icanon,echo,'
        # The relay of the killed caller is gone too: the console is free again.
        Start-Sleep -Seconds 1
        @(Descendants | Where-Object { $_.Argv -contains 'console' }) | Should -HaveCount 0
    }

    It 'restores the terminal when the caller of Enter-Container is killed' {
        NewPane 'bash'
        # One command line: after pwsh is killed, bash runs the rest without its line editor in between,
        # so `stty -a` sees the terminal as the relay left it: cooked again (icanon, echo), not raw.
        TypeLine "pwsh -NoProfile -NoLogo -c '. $script:init; Enter-Container $script:priv'; sleep 2; echo `"M=`$(stty -a | grep -o -- '-\?icanon\|-\?echo ' | tr -d ' ' | tr '\n' ,)=M`""
        WaitFor "@$([regex]::Escape($script:priv))" | Out-Null
        $pwsh = @(Descendants | Where-Object { $_.Argv[0] -match 'pwsh$' }).Pid
        $pwsh | Should -HaveCount 1
        & kill -KILL $pwsh
        (WaitFor 'M=((?:-?icanon|-?echo|,)+)=M').Groups[1].Value | Should -Be 'icanon,echo,'
    }
}
