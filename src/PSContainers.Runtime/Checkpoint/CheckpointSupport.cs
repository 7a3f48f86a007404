using PSContainers.Runtime.Config;
using PSContainers.Runtime.Containers;
using PSContainers.Runtime.State;

namespace PSContainers.Runtime.Checkpoint;

/// <summary>What the lifecycle asks of checkpoints (see <see cref="ICheckpointSupport"/>); registered by Composition/ContainerRuntime.</summary>
public sealed class CheckpointSupport : ICheckpointSupport
{
    public void ResumeSaved(IContainerLifecycle lifecycle, string name, ContainerConfig config, PersistedState state) =>
        new CheckpointManager(lifecycle).RestoreLocked(name, state.SavedCheckpoint!, config, state, deleteImages: true, progress: null);

    public bool DumpFinishedButUnrecorded(string directory) => CheckpointManifest.FinishedButUnrecorded(directory);
}
