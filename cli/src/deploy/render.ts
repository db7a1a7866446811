// `df render`: the Dataflow a GitOps repository (or `kubectl apply -f -`) holds, with an
// image that is already where the cluster pulls it from. Builds and delivers like
// `df deploy`, but talks to no API server.
import type { Dataflow } from "@waxflow/crds";
import { UsageError } from "../errors.ts";
import type { Progress } from "../ui/progress.ts";
import { type BuildImage, bundledModule, entryOf, type LoadCheck } from "./deploy.ts";
import { dataflowManifest } from "./manifest.ts";
import type { DeployOptions } from "./options.ts";

export interface RenderRequest {
  readonly options: DeployOptions;
  /** Undefined without -n: the namespace is then the applier's. */
  readonly namespace: string | undefined;
  readonly path: string;
  readonly cwd: string;
  readonly progress: Progress;
  /** How the bundle is loaded to check that it exports a Dataflow (`--no-check` skips it). */
  readonly check: LoadCheck;
  /** Absent when the image is given (--image) or there is nowhere to deliver one. */
  readonly build?: BuildImage;
}

export async function renderDataflow(request: RenderRequest): Promise<Dataflow> {
  const { options, namespace, path, build, progress, check } = request;
  if (options.image !== undefined) {
    const module = await bundledModule(path, request.cwd, progress, check);
    return dataflowManifest({ options, namespace, image: options.image, module });
  }
  if (build === undefined) {
    throw new UsageError(
      "render needs a place for the image the cluster can pull from: --kind CLUSTER (or a kind-CLUSTER context), --registry HOST[/PREFIX], or --image REF@sha256:<digest> of an image built already",
    );
  }
  const { file, exportName } = entryOf(path);
  const built = await build({ path: file, name: options.name, progress, check: { ...check, exportName } });
  const module = `${built.module}${exportName === undefined ? "" : `:${exportName}`}`;
  return dataflowManifest({ options, namespace, image: built.reference, module });
}
