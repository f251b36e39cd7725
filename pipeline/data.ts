/**
 * The data layer: which images a run uses (`data.samples`, `data.dataset`) and how each becomes
 * model input (`input`). No tf here: batches are plain typed arrays, NHWC float32. The public
 * entry of `data/`, one module per concern:
 *  - listing.ts: `listImages` over a data source, with folder.ts (class folders), list-file.ts
 *    (CSV / JSON lists, parsed by csv.ts) and paths.ts (config paths, existence checks);
 *  - labels.ts: the labels file and labels as written; boxes.ts: object bounding boxes;
 *  - ids.ts: slugs, unique ids, natural order; published.ts: names shown in a release;
 *  - preprocess.ts: `input` resolved from the model, decoding, `pixelToInput`;
 *  - batches.ts: decoding many images, in batches, and finding the ones that do not decode.
 */

export { BAD_IMAGE_HINT, perChannel, pixelToInput, pixelToInputs, preprocessImage, resolvePreprocessing, type PixelScaling, type PreprocessedImage, type Preprocessing } from './data/preprocess.ts';
export { batches, findBadImages, loadImages, type BadImage, type ImageBatch, type LoadOptions } from './data/batches.ts';
export { boxToInput, parseBox, type Box } from './data/boxes.ts';
export { parseCsv } from './data/csv.ts';
export { balancedCounts, IMAGE_EXTENSIONS } from './data/folder.ts';
export { naturalCompare, slug, slugify, uniqueIds } from './data/ids.ts';
export { readLabelsFile } from './data/labels.ts';
export { listImages, type DataKey, type DataSource, type FileEntry, type ImageRef, type ListContext } from './data/listing.ts';
export { publishedModelSource, publishedNames } from './data/published.ts';
