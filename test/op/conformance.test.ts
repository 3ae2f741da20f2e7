/**
 * The validator against ATB's own test table for RmsNormOperation (SPEC section 7:
 * conformance/atb_rms_norm.csv is the authority for the Ascend targets).
 *
 * Every row is run with strictAtb on every SoC its SocVersion names (empty: every SoC) and the
 * outcome must equal ExpectedError (NO_ERROR, or STAGE:ERROR_NAME). Rows are keyed by position:
 * CaseNum is not unique.
 *
 * How a row is run, as ATB's test harness does: OpParam is read by parseAtbParam; the input
 * tensors go to shape inference (stage I) and, with the output tensors of the row, to setup
 * (stage S). Rows of TestType `Generalization` are the exception: their output columns are not
 * the operation's outputs (rows 205 and 206 give one float16 output to a dynamic quantization
 * that returns int8 and float scale, and expect NO_ERROR), so, as for generated cases, only
 * creation and shape inference are checked there.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { dtypeFromAtb, parseAtbParam, targetsFromSocList } from '../../compiler/op/atb.js';
import type { AscendTarget } from '../../compiler/op/target.js';
import { formatOutcome, validate, type TensorSpec } from '../../compiler/op/validate.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');

/** The shared docs: $RMSFUSE_SHARED, <repo>/shared, or the folder next to the repository. */
function findTable(): string {
  const roots = [process.env.RMSFUSE_SHARED, path.join(repo, 'shared'), path.join(repo, '../shared')].filter(
    (r): r is string => typeof r === 'string' && r !== '',
  );
  for (const root of roots) {
    const file = path.join(root, 'conformance/atb_rms_norm.csv');
    if (existsSync(file)) return file;
  }
  throw new Error(`conformance/atb_rms_norm.csv not found under ${roots.join(', ')} (set RMSFUSE_SHARED)`);
}

interface Row {
  /** 1-based position among the data rows. */
  position: number;
  caseName: string;
  opParam: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  testType: string;
  socs: AscendTarget[];
  expected: string;
}

function tensors(count: string, dtypes: string, formats: string, shapes: string): TensorSpec[] {
  const n = Number(count);
  const dt = dtypes.split(';');
  const fm = formats.split(';');
  const sh = shapes.split(';');
  return Array.from({ length: n }, (_, i) => ({
    dtype: dtypeFromAtb(dt[i]),
    format: fm[i].trim(),
    shape: sh[i].split(',').map((d) => Number(d.trim())),
  }));
}

function readTable(file: string): Row[] {
  const lines = readFileSync(file, 'utf8').split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = lines[0].split('|').map((c) => c.trim());
  const col = (cells: string[], name: string): string => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`column ${name} missing`);
    return cells[i] ?? '';
  };
  return lines.slice(1).map((line, i) => {
    const cells = line.split('|').map((c) => c.trim());
    return {
      position: i + 1,
      caseName: col(cells, 'CaseName'),
      opParam: col(cells, 'OpParam'),
      inputs: tensors(col(cells, 'InNum'), col(cells, 'InDType'), col(cells, 'InFormat'), col(cells, 'InShape')),
      outputs: tensors(col(cells, 'OutNum'), col(cells, 'OutDType'), col(cells, 'OutFormat'), col(cells, 'OutShape')),
      testType: col(cells, 'TestType'),
      socs: targetsFromSocList(col(cells, 'SocVersion')),
      expected: col(cells, 'ExpectedError'),
    };
  });
}

function runRow(row: Row, soc: AscendTarget): string {
  const outputs = row.testType === 'Generalization' ? undefined : row.outputs;
  return formatOutcome(validate(parseAtbParam(row.opParam), row.inputs, outputs, soc, { strictAtb: true }));
}

/**
 * Rows not followed, on the SoCs named. The table contradicts itself here: these rows name no
 * SoC (so every SoC), yet rows 102-104 (prenorm_atlas800_err, prenorm_quant_in_tensor_atlas800_err,
 * postnorm_atlas800_err) expect PreNorm and PostNorm to be refused at creation on Ascend910A and
 * Ascend310B, before any tensor is seen. The validator follows rows 102-104 (and ATB's
 * RmsNormTypeCheck): on those two SoCs these rows end with C:ERROR_INVALID_PARAM. On every other
 * SoC they are followed exactly.
 */
const NOT_ON_910A_310B = 'an empty SocVersion would include Ascend910A/Ascend310B, where rows 102-104 refuse PreNorm/PostNorm at creation';
const EXCEPTIONS: { position: number; caseName: string; socs: AscendTarget[]; reason: string }[] = [
  { position: 65, caseName: 'prenorm_quant_in_param_stop_supporting', socs: ['ascend910a', 'ascend310b'], reason: NOT_ON_910A_310B },
  { position: 69, caseName: 'prenorm_quant_hasBias_conflict', socs: ['ascend910a', 'ascend310b'], reason: NOT_ON_910A_310B },
  { position: 80, caseName: 'postnorm_dtype_err', socs: ['ascend910a', 'ascend310b'], reason: NOT_ON_910A_310B },
  { position: 81, caseName: 'postnorm_shape_err', socs: ['ascend910a', 'ascend310b'], reason: NOT_ON_910A_310B },
];
const MAX_EXCEPTIONS = 5;

interface Check {
  row: Row;
  soc: AscendTarget;
  actual: string;
  excepted: boolean;
}

describe('conformance with ATB\'s RmsNormOperation table (strictAtb)', () => {
  let rows: Row[] = [];
  let checks: Check[] = [];

  before(() => {
    rows = readTable(findTable());
    checks = rows.flatMap((row) =>
      row.socs.map((soc) => ({
        row,
        soc,
        actual: runRow(row, soc),
        excepted: EXCEPTIONS.some((e) => e.position === row.position && e.socs.includes(soc)),
      })),
    );
    const agreeing = rows.filter((row) => checks.every((c) => c.row !== row || c.actual === row.expected)).length;
    const checksAgreeing = checks.filter((c) => c.actual === c.row.expected).length;
    const exceptions = EXCEPTIONS.map((e) => `row ${e.position} on ${e.socs.join('/')}`).join(', ');
    console.log(
      `    conformance: ${agreeing}/${rows.length} rows agree on every SoC they name ` +
        `(${checksAgreeing}/${checks.length} row x SoC checks); exceptions: ${exceptions || 'none'}`,
    );
  });

  it('reads all 206 rows, each naming at least one SoC and an expected outcome', () => {
    expect(rows).to.have.length(206);
    for (const row of rows) {
      expect(row.socs, `row ${row.position}`).to.not.be.empty;
      expect(row.expected, `row ${row.position}`).to.match(/^(NO_ERROR|[CIS]:ERROR_[A-Z_]+)$/);
      expect(row.inputs.every((t) => t.shape.every(Number.isInteger)), `row ${row.position} shapes`).to.equal(true);
    }
  });

  it('agrees with every row on every SoC it names, except the listed exceptions', () => {
    const disagreements = checks
      .filter((c) => !c.excepted && c.actual !== c.row.expected)
      .map((c) => `row ${c.row.position} ${c.row.caseName} on ${c.soc}: expected ${c.row.expected}, got ${c.actual}`);
    expect(disagreements, disagreements.join('\n')).to.deep.equal([]);
  });

  it('keeps the exception list small, pointing at the right rows, and each exception still disagrees', () => {
    expect(EXCEPTIONS.length).to.be.at.most(MAX_EXCEPTIONS);
    for (const e of EXCEPTIONS) {
      const row = rows[e.position - 1];
      expect(row.caseName, `exception row ${e.position}`).to.equal(e.caseName);
      for (const soc of e.socs) {
        expect(row.socs, `row ${e.position} names ${soc}`).to.include(soc);
        expect(runRow(row, soc), `row ${e.position} on ${soc} (exception: ${e.reason})`).to.not.equal(row.expected);
      }
    }
  });

  it('follows rows 102-104, the reason for the exceptions: no PreNorm/PostNorm on Ascend910A and Ascend310B', () => {
    for (const position of [102, 103, 104]) {
      const row = rows[position - 1];
      expect(row.socs).to.have.members(['ascend910a', 'ascend310b']);
      for (const soc of row.socs) expect(runRow(row, soc), `row ${position} on ${soc}`).to.equal('C:ERROR_INVALID_PARAM');
    }
  });
});
