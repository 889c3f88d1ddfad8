import test from 'ava';
import { driverSuite } from '../helpers/suite.js';
import { modesSuite } from '../helpers/modes-suite.js';

driverSuite(test, 'posix');
modesSuite(test, 'posix');
