#!/usr/bin/env python3
"""Generates en-US/help/Network.xml (MAML) for the network cmdlets from the compact table below."""
from xml.sax.saxutils import escape as e
import os

STORE = ("StorePath", "string", "The container store (LXC's lxcpath) used to resolve -Container names; defaults to $env:PSCONTAINERS_PATH or /var/lib/pscontainers.")
NS = ("Namespace", "string", "Act inside this named network namespace (/run/netns/NAME, like ip -n NAME) instead of the host.")
CT = ("Container", "string", "Act inside the network namespace of this running container instead of the host.")
WHATIF = ("WhatIf", "SwitchParameter", "Shows what would happen without doing it.")
CONFIRM = ("Confirm", "SwitchParameter", "Asks for confirmation before acting.")
LOC = [NS, CT, STORE]
SP = [WHATIF, CONFIRM]

C = [
 ("New", "NetNamespace", "Creates named network namespaces, like ip netns add.",
  "Creates a network namespace per name and pins it with a bind mount on /run/netns/NAME (a shared mount point, made so if needed), exactly where iproute2 keeps them, so ip netns and this module see the same namespaces. The loopback interface of a new namespace is brought up. Files in /etc/netns/NAME are bind-mounted over /etc for commands run with Invoke-NetNamespaceCommand.",
  [("Name", "string[]", "The names of the namespaces to create (no '/', at most 255 bytes)."), STORE] + SP,
  [("New-NetNamespace -Name red, blue", "Creates two namespaces; ip netns list shows them too."),
   ("'lab1','lab2' | New-NetNamespace | Format-Table Name, Inode", "Creates namespaces from the pipeline and shows their inode numbers.")]),
 ("Get", "NetNamespace", "Lists named network namespaces and the processes in them, like ip netns list / pids / identify.",
  "Lists the namespaces pinned under /run/netns with their inode number and the pids of the processes whose network namespace they are (ip netns pids). With -ProcessId, returns the named namespace a process is in (ip netns identify), or nothing when it is in none of them.",
  [("Name", "string[]", "Names to show; wildcards are allowed. Without it, every named namespace is listed."),
   ("ProcessId", "int", "Returns the named namespace this process is in (ip netns identify)."), STORE],
  [("Get-NetNamespace", "Lists every named network namespace with the pids inside."),
   ("Get-NetNamespace -ProcessId 4242", "Shows which named namespace process 4242 runs in.")]),
 ("Remove", "NetNamespace", "Removes named network namespaces, like ip netns delete.",
  "Detaches the bind mount that pins the namespace and removes /run/netns/NAME. The namespace itself (and its interfaces) disappears once no process uses it any more.",
  [("Name", "string[]", "The namespaces to remove; accepts namespace objects from Get-NetNamespace."), STORE] + SP,
  [("Remove-NetNamespace -Name red", "Removes namespace red."),
   ("Get-NetNamespace lab* | Remove-NetNamespace", "Removes every namespace whose name starts with lab.")]),
 ("Invoke", "NetNamespaceCommand", "Runs a program inside a named network namespace, like ip netns exec.",
  "Runs the program (no shell involved) in the network namespace, in a private mount namespace where /sys is remounted for that namespace and every file of /etc/netns/NAME is bind-mounted over the same file in /etc (hosts, resolv.conf). Returns an object with ExitCode, Output and Error lines, like Invoke-ContainerCommand.",
  [("Name", "string", "The network namespace to run in."),
   ("Command", "string[]", "The program and its arguments, e.g. -Command ping,-c1,10.0.0.2."), STORE] + SP,
  [("Invoke-NetNamespaceCommand -Name red -Command busybox,ping,-c1,10.0.0.2", "Pings 10.0.0.2 from namespace red and returns the exit code and output."),
   ("(Invoke-NetNamespaceCommand red -Command cat,/etc/resolv.conf).Output", "Shows the resolv.conf a program in red sees (from /etc/netns/red if present).")]),
 ("New", "VethPair", "Creates a veth pair, like ip link add NAME type veth peer name PEER.",
  "Creates both ends in one rtnetlink request. The peer is created directly inside its namespace or container (IFLA_NET_NS_FD), which avoids moving an existing end afterwards. The kernel creates both ends or neither, so a failure leaves nothing behind. Returns the first end.",
  [("Name", "string", "The name of the first end (1-15 bytes)."),
   ("PeerName", "string", "The name of the other end (1-15 bytes)."),
   ("PeerNamespace", "string", "Create the peer directly in this named network namespace."),
   ("PeerContainer", "string", "Create the peer directly in this running container's network namespace."),
   ("Mtu", "int", "The MTU of both ends (68-65535)."),
   ("MacAddress", "string", "The MAC address of the first end, e.g. 00:16:3e:12:34:56.")] + LOC + SP,
  [("New-VethPair -Name veth-red -PeerName eth0 -PeerNamespace red", "Creates veth-red on the host and eth0 directly inside namespace red."),
   ("New-VethPair -Namespace hub -Name v1 -PeerName eth0 -PeerContainer web -Mtu 1400", "Creates v1 in namespace hub and its peer eth0 inside the running container web, both with MTU 1400.")]),
 ("New", "NetworkBridge", "Creates a Linux bridge, like ip link add NAME type bridge.",
  "Creates a bridge on the host, in a named namespace or in a container. Attach ports with Set-NetworkLink -Master and bring it up with Set-NetworkLink -Up.",
  [("Name", "string[]", "The names of the bridges to create (1-15 bytes)."), ("Mtu", "int", "The bridge's MTU (68-65535).")] + LOC + SP,
  [("New-NetworkBridge -Name br0 -Namespace hub", "Creates bridge br0 inside namespace hub."),
   ("New-NetworkBridge br1 | Set-NetworkLink -Up", "Creates br1 on the host and brings it up.")]),
 ("New", "MacvlanLink", "Creates a macvlan link on a parent interface, like ip link add link PARENT name NAME type macvlan mode MODE.",
  "Creates a macvlan interface with its own MAC address on top of a parent interface, in one of the modes private, vepa, bridge (the default), passthru or source.",
  [("Name", "string", "The new interface's name."), ("Parent", "string", "The parent (lower) interface."),
   ("Mode", "MacvlanMode", "Private, Vepa, Bridge (default), Passthru or Source.")] + LOC + SP,
  [("New-MacvlanLink -Name mv0 -Parent eth1 -Mode Bridge -Namespace lab", "Creates mv0 on eth1 inside namespace lab in bridge mode."),
   ("New-MacvlanLink mv1 eth1 -Mode Private", "Creates a private-mode macvlan on the host's eth1.")]),
 ("New", "VlanLink", "Creates an 802.1Q VLAN link, like ip link add link PARENT name NAME type vlan id ID.",
  "Creates a VLAN sub-interface of a parent. Kernels without 8021q support (CONFIG_VLAN_8021Q) answer with a precise LinkKindNotSupported error.",
  [("Name", "string", "The new interface's name, e.g. eth0.5."), ("Parent", "string", "The parent interface."),
   ("Id", "int", "The VLAN id (0-4094).")] + LOC + SP,
  [("New-VlanLink -Name eth0.5 -Parent eth0 -Id 5", "Creates VLAN 5 on eth0."),
   ("New-VlanLink -Name v10 -Parent trunk0 -Id 10 -Namespace lab", "Creates VLAN 10 on trunk0 inside namespace lab.")]),
 ("New", "IpvlanLink", "Creates an ipvlan link, like ip link add link PARENT name NAME type ipvlan mode MODE.",
  "Creates an ipvlan interface sharing the parent's MAC address, in mode L2 (default), L3 or L3S. Kernels without CONFIG_IPVLAN answer with a precise LinkKindNotSupported error.",
  [("Name", "string", "The new interface's name."), ("Parent", "string", "The parent interface."),
   ("Mode", "IpvlanMode", "L2 (default), L3 or L3S.")] + LOC + SP,
  [("New-IpvlanLink -Name ipv0 -Parent eth0 -Mode L3", "Creates an L3 ipvlan on eth0."),
   ("New-IpvlanLink ipv1 eth1 -Namespace lab", "Creates an L2 ipvlan on eth1 inside namespace lab.")]),
 ("Get", "NetworkLink", "Lists network interfaces, like ip -br link.",
  "Returns one object per interface with its index, name, kind (veth, bridge, macvlan...), operational state, flags, MAC, MTU, bridge master, parent or peer, namespace and addresses.",
  [("Name", "string[]", "Interfaces to show; wildcards are allowed. A literal name that does not exist is an error.")] + LOC,
  [("Get-NetworkLink -Namespace hub", "Lists the interfaces of namespace hub."),
   ("Get-NetworkLink -Container web -Name eth0", "Shows eth0 inside the running container web.")]),
 ("Set", "NetworkLink", "Changes a network interface, like ip link set.",
  "Brings an interface up or down, renames it, attaches it to a bridge or detaches it, moves it to another namespace, container or back to the host, sets its MTU and MAC address and the hairpin mode of a bridge port. Everything but hairpin is one rtnetlink request, applied entirely or not at all.",
  [("Name", "string[]", "The interfaces to change."), ("Up", "SwitchParameter", "Bring the interface up."),
   ("Down", "SwitchParameter", "Bring the interface down."), ("NewName", "string", "Rename the interface (it must be down, or be moved in the same call)."),
   ("Master", "string", "Attach the interface to this bridge."), ("NoMaster", "SwitchParameter", "Detach the interface from its bridge."),
   ("DestinationNamespace", "string", "Move the interface into this named network namespace."),
   ("DestinationContainer", "string", "Move the interface into this running container."),
   ("DestinationHost", "SwitchParameter", "Move the interface back into the host's network namespace."),
   ("Mtu", "int", "The new MTU (68-65535)."), ("MacAddress", "string", "The new MAC address."),
   ("Hairpin", "bool", "Hairpin mode of a bridge port: frames may leave through the port they came in."),
   ("PassThru", "SwitchParameter", "Returns the changed interface.")] + LOC + SP,
  [("Set-NetworkLink -Namespace hub -Name v1 -Master br0 -Up", "Attaches v1 to bridge br0 in namespace hub and brings it up."),
   ("Set-NetworkLink -Name veth9 -NewName eth1 -DestinationContainer web -PassThru", "Moves veth9 into container web, renamed eth1, and returns it.")]),
 ("Remove", "NetworkLink", "Deletes network interfaces, like ip link delete.",
  "Deletes the interfaces. Deleting one end of a veth pair deletes the other end too.",
  [("Name", "string[]", "The interfaces to delete; accepts interface objects from Get-NetworkLink.")] + LOC + SP,
  [("Remove-NetworkLink -Name veth-red", "Deletes veth-red (and its peer)."),
   ("Get-NetworkLink -Namespace lab -Name mv* | Remove-NetworkLink -Namespace lab", "Deletes every macvlan named mv* in namespace lab.")]),
 ("Add", "NetworkAddress", "Adds IP addresses to an interface, like ip addr add.",
  "Adds IPv4 or IPv6 addresses written as address/prefix; an address without a prefix is refused (AddressWithoutPrefix) instead of silently becoming a /32.",
  [("Name", "string", "The interface."), ("Address", "string[]", "Addresses with prefix, e.g. 10.0.0.1/24 or fd00::1/64."),
   ("PassThru", "SwitchParameter", "Returns the added addresses.")] + LOC + SP,
  [("Add-NetworkAddress -Namespace red -Name eth0 -Address 10.0.0.2/24", "Gives eth0 in namespace red the address 10.0.0.2/24."),
   ("Add-NetworkAddress -Container web -Name eth0 -Address fd00::5/64 -PassThru", "Adds an IPv6 address inside container web and returns it.")]),
 ("Get", "NetworkAddress", "Lists IP addresses, like ip -br addr.",
  "Returns one object per address with the interface name, family, address, prefix length and scope.",
  [("Name", "string", "Only the addresses of this interface."), ("Family", "string", "Only IPv4 or only IPv6 addresses.")] + LOC,
  [("Get-NetworkAddress -Namespace red", "Lists every address in namespace red."),
   ("Get-NetworkAddress -Container web -Family IPv4", "Lists the IPv4 addresses inside container web.")]),
 ("Remove", "NetworkAddress", "Removes IP addresses from an interface, like ip addr del.",
  "Removes the addresses (address/prefix) from the interface.",
  [("Name", "string", "The interface."), ("Address", "string[]", "The addresses with prefix, e.g. 10.0.0.1/24.")] + LOC + SP,
  [("Remove-NetworkAddress -Namespace red -Name eth0 -Address 10.0.0.2/24", "Removes 10.0.0.2/24 from eth0 in namespace red."),
   ("Get-NetworkAddress -Namespace red -Name eth0 -Family IPv4 | Remove-NetworkAddress -Namespace red", "Removes every IPv4 address of eth0 in namespace red.")]),
 ("Add", "NetworkRoute", "Adds a route to the main table, like ip route add.",
  "Adds a route to network/prefix or the default route, via a gateway and/or out of a device, with an optional metric. A gateway that is not on a connected network is a precise GatewayUnreachable error.",
  [("Destination", "string", "network/prefix, or default."), ("Gateway", "string", "The next hop's address."),
   ("Device", "string", "The outgoing interface."), ("Metric", "int", "The route's metric (priority)."),
   ("PassThru", "SwitchParameter", "Returns the added route.")] + LOC + SP,
  [("Add-NetworkRoute -Namespace red -Destination default -Gateway 10.0.0.1", "Sets the default gateway of namespace red."),
   ("Add-NetworkRoute -Destination 192.168.50.0/24 -Device br0 -Metric 10", "Routes 192.168.50.0/24 out of br0 on the host.")]),
 ("Get", "NetworkRoute", "Lists the routes of the main table, like ip route.",
  "Returns one object per unicast route of the main table: destination, gateway, device, protocol, scope, metric and preferred source.",
  [("Family", "string", "Only IPv4 or only IPv6 routes.")] + LOC,
  [("Get-NetworkRoute -Namespace red", "Lists the routes of namespace red."),
   ("Get-NetworkRoute -Container web -Family IPv4 | Where-Object Destination -eq default", "Shows the default route inside container web.")]),
 ("Remove", "NetworkRoute", "Removes a route, like ip route del.",
  "Removes the route to the destination; -Gateway and -Device narrow down which route when several match.",
  [("Destination", "string", "network/prefix, or default."), ("Gateway", "string", "The route's next hop."),
   ("Device", "string", "The route's outgoing interface.")] + LOC + SP,
  [("Remove-NetworkRoute -Namespace red -Destination default", "Removes the default route of namespace red."),
   ("Get-NetworkRoute -Namespace red | Where-Object Protocol -eq boot | Remove-NetworkRoute -Namespace red", "Removes every route added by hand in namespace red.")]),
 ("Get", "NetworkNeighbor", "Lists the neighbour (ARP/NDP) cache, like ip neigh.",
  "Returns one object per IPv4 ARP or IPv6 neighbour-discovery entry: interface, address, MAC address and state (REACHABLE, STALE, FAILED, PERMANENT...).",
  [("Name", "string", "Only the entries of this interface."), ("Family", "string", "Only IPv4 or only IPv6 entries.")] + LOC,
  [("Get-NetworkNeighbor -Namespace red", "Shows the neighbours namespace red has resolved."),
   ("Get-NetworkNeighbor -Container web -Name eth0 -Family IPv4", "Shows the ARP entries of eth0 inside container web.")]),
]

out = ['<?xml version="1.0" encoding="utf-8"?>',
       '<helpItems schema="maml" xmlns="http://msh" xmlns:maml="http://schemas.microsoft.com/maml/2004/10" xmlns:command="http://schemas.microsoft.com/maml/dev/command/2004/10" xmlns:dev="http://schemas.microsoft.com/maml/dev/2004/10">']
for verb, noun, synopsis, desc, params, examples in C:
    name = f"{verb}-{noun}"
    out.append('  <command:command>')
    out.append('    <command:details>')
    out.append(f'      <command:name>{name}</command:name>')
    out.append(f'      <command:verb>{verb}</command:verb>')
    out.append(f'      <command:noun>{noun}</command:noun>')
    out.append(f'      <maml:description><maml:para>{e(synopsis)}</maml:para></maml:description>')
    out.append('    </command:details>')
    out.append(f'    <maml:description><maml:para>{e(desc)}</maml:para></maml:description>')
    out.append('    <command:syntax>')
    out.append('      <command:syntaxItem>')
    out.append(f'        <maml:name>{name}</maml:name>')
    for p, t, d in params:
        out.append(f'        <command:parameter required="false" position="named"><maml:name>{p}</maml:name><command:parameterValue required="true">{t}</command:parameterValue></command:parameter>')
    out.append('      </command:syntaxItem>')
    out.append('    </command:syntax>')
    out.append('    <command:parameters>')
    for p, t, d in params:
        out.append('      <command:parameter required="false" globbing="false" pipelineInput="false" position="named">')
        out.append(f'        <maml:name>{p}</maml:name>')
        out.append(f'        <maml:description><maml:para>{e(d)}</maml:para></maml:description>')
        out.append(f'        <command:parameterValue required="true">{t}</command:parameterValue>')
        out.append(f'        <dev:type><maml:name>{t}</maml:name></dev:type>')
        out.append('      </command:parameter>')
    out.append('    </command:parameters>')
    out.append('    <command:examples>')
    for i, (code, remark) in enumerate(examples, 1):
        out.append('      <command:example>')
        out.append(f'        <maml:title>-------------------------- Example {i} --------------------------</maml:title>')
        out.append(f'        <dev:code>{e(code)}</dev:code>')
        out.append(f'        <dev:remarks><maml:para>{e(remark)}</maml:para></dev:remarks>')
        out.append('      </command:example>')
    out.append('    </command:examples>')
    out.append('  </command:command>')
out.append('</helpItems>')
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
open(os.path.join(root, 'en-US', 'help', 'Network.xml'), 'w').write('\n'.join(out) + '\n')
